//! A scroll position over text whose length only the view knows: the view reports the largest useful offset
//! after each draw, and every key from then on stays within it.

/// Offsets accepted before the first draw reports the content's length.
const UNKNOWN_MAX: u16 = 1000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scroll {
    offset: u16,
    /// The last line at the top of the pane when the content's end is at its bottom; `None` until drawn.
    max: Option<u16>,
}

impl Scroll {
    pub fn offset(&self) -> u16 {
        self.offset
    }

    pub fn max(&self) -> Option<u16> {
        self.max
    }

    pub fn by(&mut self, delta: isize) {
        let max = i64::from(self.max.unwrap_or(UNKNOWN_MAX));
        let next = i64::from(self.offset).saturating_add(delta.clamp(-100_000, 100_000) as i64);
        self.offset = u16::try_from(next.clamp(0, max)).unwrap_or(0);
    }

    pub fn reset(&mut self) {
        self.offset = 0;
    }

    /// Bring the wrapped line `row` into a pane `height` lines tall, moving as little as possible.
    pub fn reveal(&mut self, row: u16, height: u16) {
        if row < self.offset {
            self.offset = row;
        } else if height > 0 && row >= self.offset.saturating_add(height) {
            self.offset = row.saturating_sub(height - 1);
        }
        if let Some(max) = self.max {
            self.offset = self.offset.min(max);
        }
    }

    /// The view drew the content: `max` is the offset that shows its last line at the bottom.
    pub fn set_max(&mut self, max: u16) {
        self.max = Some(max);
        self.offset = self.offset.min(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_stay_within_the_content_once_it_is_known() {
        let mut s = Scroll::default();
        s.by(isize::MAX / 2);
        assert_eq!(s.offset(), UNKNOWN_MAX, "unbounded until drawn, but finite");
        s.set_max(7);
        assert_eq!(s.offset(), 7, "the draw pulls it back to the end");
        s.by(5);
        assert_eq!(s.offset(), 7, "j past the end does nothing");
        s.by(-1);
        assert_eq!(s.offset(), 6, "and k moves at once");
        s.by(isize::MIN / 2);
        assert_eq!(s.offset(), 0);
    }

    #[test]
    fn reveal_moves_only_as_far_as_needed() {
        let mut s = Scroll::default();
        s.set_max(40);
        s.reveal(5, 10);
        assert_eq!(s.offset(), 0, "already in view");
        s.reveal(12, 10);
        assert_eq!(s.offset(), 3, "the row becomes the pane's last line");
        s.reveal(1, 10);
        assert_eq!(s.offset(), 1, "the row becomes the pane's first line");
        s.reveal(60, 10);
        assert_eq!(s.offset(), 40, "never past the content's end");
    }
}
