//! runlambda: an OCI runtime whose containers are AWS Lambda execution environments.
//!
//! The binary (`src/main.rs`) only parses the command line; everything it runs lives here so
//! that integration tests can drive the same code. The modules follow the life of a container:
//! `config` and `bundle` turn files into a checked [`spec::EnvironmentSpec`], `cgroup` and
//! `sandbox` build the environment on the kernel, `container` implements the OCI verbs on top,
//! and `state` persists what later CLI calls need to find again.

pub mod activation;
pub mod annotations;
pub mod api;
pub mod bundle;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod console;
pub mod container;
pub mod error;
pub mod exec;
pub mod features;
pub mod function;
pub mod hooks;
pub mod invoke_client;
pub mod lambda;
pub mod lease;
pub mod lifecycle;
pub mod logging;
pub mod mountinfo;
pub mod run;
pub mod sandbox;
pub mod signal;
pub mod socket_path;
pub mod spec;
pub mod state;
pub mod stats;
pub mod supervisor;
pub mod sys;
pub mod template;

pub use error::{Error, Result};
