//! The filter editor: `/` starts typing, Enter keeps the text, Esc clears it. Shared by the Sessions and
//! Holdouts tables, which both match it against every column.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterEditor {
    pub text: String,
    pub editing: bool,
}

impl FilterEditor {
    pub fn start(&mut self) {
        self.editing = true;
    }

    /// Enter: keep the text, stop typing.
    pub fn apply(&mut self) {
        self.editing = false;
    }

    /// Esc: forget the text and stop typing.
    pub fn clear(&mut self) {
        self.text.clear();
        self.editing = false;
    }

    /// Backspace; true when the text changed.
    pub fn delete_char(&mut self) -> bool {
        self.text.pop().is_some()
    }

    /// A key the key table did not claim while typing: printable characters are text, chords are not
    /// (Ctrl-W must not type "w"). True when the text changed.
    pub fn type_key(&mut self, key: &KeyEvent) -> bool {
        if key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SUPER)
        {
            return false;
        }
        match key.code {
            KeyCode::Char(c) if !c.is_control() => {
                self.text.push(c);
                true
            }
            _ => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), modifiers)
    }

    #[test]
    fn typing_takes_characters_but_not_chords() {
        let mut f = FilterEditor::default();
        f.start();
        assert!(f.type_key(&key('b', KeyModifiers::NONE)));
        assert!(
            f.type_key(&key('I', KeyModifiers::SHIFT)),
            "Shift is part of the character"
        );
        assert!(!f.type_key(&key('w', KeyModifiers::CONTROL)), "Ctrl-W is not text");
        assert!(!f.type_key(&key('x', KeyModifiers::ALT)), "Alt-x is not text");
        assert!(!f.type_key(&KeyEvent::new(KeyCode::F(5), KeyModifiers::NONE)));
        assert_eq!(f.text, "bI");
        assert!(f.delete_char());
        assert_eq!(f.text, "b");
        f.apply();
        assert!(!f.editing);
        assert_eq!(f.text, "b", "Enter keeps the text");
        f.start();
        f.clear();
        assert!(f.is_empty() && !f.editing, "Esc forgets it");
        assert!(!f.delete_char(), "nothing left to delete");
    }
}
