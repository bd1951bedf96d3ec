//! bundle (being written).
