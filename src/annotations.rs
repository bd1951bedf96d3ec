//! annotations (being written).

/// Per-function settings read from `com.runlambda.*` annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionSettings {
    pub memory_mb: Option<u32>,
    pub ephemeral_storage_mb: Option<u32>,
    pub timeout_s: Option<u32>,
}
