//! `hooks`: each list checked into [`Hooks`]. A path must be absolute (it is resolved in
//! another root for `startContainer`, so nothing relative could mean one thing), a timeout
//! positive, and every env entry `KEY=value`, as the runtime-spec requires.

use std::time::Duration;

use oci_spec::runtime::Hook as OciHook;

use super::FieldError;
use crate::hooks::{Hook, HookKind, Hooks};

/// The hook lists of config.json; none means no hooks.
// `prestart` is deprecated in the runtime-spec, and still a hook that must run.
#[allow(deprecated)]
pub(super) fn convert(hooks: Option<&oci_spec::runtime::Hooks>) -> Result<Hooks, FieldError> {
    let Some(hooks) = hooks else {
        return Ok(Hooks::default());
    };
    let list = |kind: HookKind, list: &Option<Vec<OciHook>>| -> Result<Vec<Hook>, FieldError> {
        list.iter()
            .flatten()
            .enumerate()
            .map(|(index, hook)| convert_one(&format!("hooks.{kind}[{index}]"), hook))
            .collect()
    };
    Ok(Hooks {
        prestart: list(HookKind::Prestart, hooks.prestart())?,
        create_runtime: list(HookKind::CreateRuntime, hooks.create_runtime())?,
        create_container: list(HookKind::CreateContainer, hooks.create_container())?,
        start_container: list(HookKind::StartContainer, hooks.start_container())?,
        poststart: list(HookKind::Poststart, hooks.poststart())?,
        poststop: list(HookKind::Poststop, hooks.poststop())?,
    })
}

fn convert_one(field: &str, hook: &OciHook) -> Result<Hook, FieldError> {
    let path = hook.path();
    if !path.is_absolute() {
        return Err(FieldError::invalid(
            format!("{field}.path"),
            path,
            "not an absolute path",
        ));
    }
    let env = hook.env().clone().unwrap_or_default();
    if let Some(entry) = env.iter().find(|entry| !entry.contains('=')) {
        return Err(FieldError::invalid(
            format!("{field}.env"),
            entry,
            "not KEY=value",
        ));
    }
    let timeout = match hook.timeout() {
        None => None,
        Some(seconds) if seconds > 0 => Some(Duration::from_secs(seconds.unsigned_abs())),
        Some(seconds) => {
            return Err(FieldError::invalid(
                format!("{field}.timeout"),
                seconds,
                "must be greater than zero",
            ))
        }
    };
    Ok(Hook {
        path: path.clone(),
        args: hook.args().clone().unwrap_or_default(),
        env,
        timeout,
    })
}
