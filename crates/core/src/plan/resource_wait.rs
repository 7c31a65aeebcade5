//! Time a layer is held up by shared resources that other runs hold, which
//! its deadline does not count unless the layer says so.

use std::time::Duration;

use crate::layer::LayerPlan;

/// How long a layer has been held up by shared resources, on the layer's
/// clock: the time of the spans that ended, and the start of the one going
/// on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceWait {
    /// The spans that ended.
    pub total: Duration,
    /// When the span going on began.
    pub since: Option<Duration>,
}

impl ResourceWait {
    /// The wait after observing at `now` whether the layer is `blocked`
    /// ([`Decision::blocked_on_resources`](super::Decision), or waiting for
    /// the layer's own grant).
    pub fn account(self, now: Duration, blocked: bool) -> ResourceWait {
        match (self.since, blocked) {
            (None, true) => ResourceWait {
                since: Some(now),
                ..self
            },
            (Some(s), false) => ResourceWait {
                total: self.total + now.saturating_sub(s),
                since: None,
            },
            _ => self,
        }
    }

    /// The whole wait up to `now`.
    pub fn at(&self, now: Duration) -> Duration {
        self.total + self.since.map_or(Duration::ZERO, |s| now.saturating_sub(s))
    }

    /// When the layer's deadline counts from: its start, moved on by the
    /// wait unless the layer counts the wait.
    pub fn deadline_start(&self, layer: &LayerPlan, started: Duration, now: Duration) -> Duration {
        if layer.settings.deadline_counts_resource_wait {
            started
        } else {
            started + self.at(now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{LayerSettings, Strategy};

    #[test]
    fn spans_add_up_and_the_deadline_moves_only_when_not_counted() {
        let s = Duration::from_secs;
        let w = ResourceWait::default()
            .account(s(1), false)
            .account(s(2), true)
            .account(s(3), true)
            .account(s(5), false)
            .account(s(7), true);
        assert_eq!(w.total, s(3));
        assert_eq!(w.at(s(9)), s(5));
        let mut layer =
            LayerPlan::new(LayerSettings::new("l", Strategy::Sequential, None), vec![]).unwrap();
        assert_eq!(w.deadline_start(&layer, s(1), s(9)), s(6));
        layer.settings.deadline_counts_resource_wait = true;
        assert_eq!(w.deadline_start(&layer, s(1), s(9)), s(1));
    }
}
