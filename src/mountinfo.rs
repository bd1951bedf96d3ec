//! mountinfo (being written).
