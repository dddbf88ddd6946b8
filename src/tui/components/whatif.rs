//! The What-if screen: which target is shown and how far it is scrolled.

use super::Scroll;
use crate::analysis::whatif::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhatIfView {
    pub target: Target,
    pub scroll: Scroll,
}

impl Default for WhatIfView {
    fn default() -> Self {
        WhatIfView {
            target: Target::MinTls13,
            scroll: Scroll::default(),
        }
    }
}

impl WhatIfView {
    /// `←`/`→`/`x`: the other target, from its top.
    pub fn next_target(&mut self) {
        self.target = match self.target {
            Target::MinTls13 => Target::TlsRequired,
            Target::TlsRequired => Target::MinTls13,
        };
        self.scroll = Scroll::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switching_targets_starts_at_the_top() {
        let mut w = WhatIfView::default();
        w.scroll.set_max(10);
        w.scroll.by(4);
        w.next_target();
        assert_eq!(w.target, Target::TlsRequired);
        assert_eq!(w.scroll.offset(), 0);
        assert_eq!(w.scroll.max(), None, "the other report has its own length");
        w.next_target();
        assert_eq!(w.target, Target::MinTls13);
    }
}
