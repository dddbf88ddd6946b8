//! The `?` overlay: open or closed, and how far it is scrolled.

use super::Scroll;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Help {
    pub open: bool,
    pub scroll: Scroll,
}

impl Help {
    pub fn toggle(&mut self) {
        self.open = !self.open;
        self.scroll = Scroll::default();
    }

    pub fn close(&mut self) {
        self.open = false;
        self.scroll = Scroll::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopening_starts_at_the_top() {
        let mut h = Help::default();
        h.toggle();
        h.scroll.set_max(4);
        h.scroll.by(3);
        h.toggle();
        assert!(!h.open);
        h.toggle();
        assert_eq!(h.scroll.offset(), 0);
        h.close();
        assert!(!h.open);
    }
}
