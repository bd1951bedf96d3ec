//! container (being written).
