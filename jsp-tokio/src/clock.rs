//! The driver's clock: one process-wide origin, so that every endpoint, every server config's
//! ticket keys and every client's session tickets agree on what a [`jsp_core::Instant`] means.

use std::sync::OnceLock;

static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();

fn origin() -> std::time::Instant {
    *ORIGIN.get_or_init(std::time::Instant::now)
}

/// The core's notion of now: time since this process first asked.
pub fn now() -> jsp_core::Instant {
    jsp_core::Instant::from_duration(origin().elapsed())
}

/// The wall-clock instant of a core deadline.
pub(crate) fn to_std(t: jsp_core::Instant) -> std::time::Instant {
    let o = origin();
    o.checked_add(t.since_origin())
        .unwrap_or_else(|| o + std::time::Duration::from_secs(86_400 * 365))
}
