//! The sandbox (being written).
