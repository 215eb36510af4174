//! JetStreamProto driver for a mio event loop.
//!
//! Not built yet: this crate is a placeholder in the workspace layout of `DESIGN.md`
//! so that the layout compiles from the first commit.
#![forbid(unsafe_code)]

pub use jsp_core;
