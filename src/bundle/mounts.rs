//! `mounts` of config.json → [`MountSpec`]s, with mount options parsed as runc parses them:
//! flag words become `MS_*` flags (set or cleared, in order), propagation words become
//! propagation flags, `bind`/`rbind` select a bind mount, and every other word is filesystem
//! data (`mode=755,size=65536k`). Also the `/tmp` tmpfs of the ephemeral-storage setting.
//!
//! Destinations: runtime-spec 1.2 allows relative ones, which runc treats as relative to the
//! container's `/`; so does runlambda. A `..` component is refused rather than resolved.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Mount;

use super::FieldError;
use crate::spec::{MountKind, MountSpec};

/// What one option word does. (`MS_*` are `c_ulong`, which is `u64` on the 64-bit Linux
/// targets runlambda builds for, and what [`MountSpec`] carries.)
#[derive(Debug, Clone, Copy)]
enum Effect {
    Set(u64),
    Clear(u64),
    Bind {
        recursive: bool,
    },
    Propagation(u64),
    /// Options runc implements with `mount_setattr`, id-mapped mounts or its own extensions:
    /// passing them to the kernel as data would fail obscurely, so they are refused by name.
    Unsupported,
}

/// runc's option words (`libcontainer/specconv`), same names, same effects.
const OPTIONS: &[(&str, Effect)] = {
    use libc::*;
    use Effect::*;
    &[
        ("acl", Set(MS_POSIXACL)),
        ("async", Clear(MS_SYNCHRONOUS)),
        ("atime", Clear(MS_NOATIME)),
        ("bind", Bind { recursive: false }),
        ("defaults", Set(0)),
        ("dev", Clear(MS_NODEV)),
        ("diratime", Clear(MS_NODIRATIME)),
        ("dirsync", Set(MS_DIRSYNC)),
        ("exec", Clear(MS_NOEXEC)),
        ("iversion", Set(MS_I_VERSION)),
        ("lazytime", Set(MS_LAZYTIME)),
        ("loud", Clear(MS_SILENT)),
        ("mand", Set(MS_MANDLOCK)),
        ("noacl", Clear(MS_POSIXACL)),
        ("noatime", Set(MS_NOATIME)),
        ("nodev", Set(MS_NODEV)),
        ("nodiratime", Set(MS_NODIRATIME)),
        ("noexec", Set(MS_NOEXEC)),
        ("noiversion", Clear(MS_I_VERSION)),
        ("nolazytime", Clear(MS_LAZYTIME)),
        ("nomand", Clear(MS_MANDLOCK)),
        ("norelatime", Clear(MS_RELATIME)),
        ("nostrictatime", Clear(MS_STRICTATIME)),
        ("nosuid", Set(MS_NOSUID)),
        ("nosymfollow", Set(MS_NOSYMFOLLOW)),
        ("rbind", Bind { recursive: true }),
        ("relatime", Set(MS_RELATIME)),
        ("remount", Set(MS_REMOUNT)),
        ("ro", Set(MS_RDONLY)),
        ("rw", Clear(MS_RDONLY)),
        ("silent", Set(MS_SILENT)),
        ("strictatime", Set(MS_STRICTATIME)),
        ("suid", Clear(MS_NOSUID)),
        ("symfollow", Clear(MS_NOSYMFOLLOW)),
        ("sync", Set(MS_SYNCHRONOUS)),
        ("private", Propagation(MS_PRIVATE)),
        ("rprivate", Propagation(MS_PRIVATE | MS_REC)),
        ("shared", Propagation(MS_SHARED)),
        ("rshared", Propagation(MS_SHARED | MS_REC)),
        ("slave", Propagation(MS_SLAVE)),
        ("rslave", Propagation(MS_SLAVE | MS_REC)),
        ("unbindable", Propagation(MS_UNBINDABLE)),
        ("runbindable", Propagation(MS_UNBINDABLE | MS_REC)),
        ("idmap", Unsupported),
        ("ridmap", Unsupported),
        ("tmpcopyup", Unsupported),
        ("rro", Unsupported),
        ("rrw", Unsupported),
        ("rnosuid", Unsupported),
        ("rsuid", Unsupported),
        ("rnodev", Unsupported),
        ("rdev", Unsupported),
        ("rnoexec", Unsupported),
        ("rexec", Unsupported),
        ("rnodiratime", Unsupported),
        ("rdiratime", Unsupported),
        ("rrelatime", Unsupported),
        ("rnorelatime", Unsupported),
        ("rnoatime", Unsupported),
        ("ratime", Unsupported),
        ("rstrictatime", Unsupported),
        ("rnostrictatime", Unsupported),
        ("rnosymfollow", Unsupported),
        ("rsymfollow", Unsupported),
    ]
};

/// The options of one mount, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Options {
    /// `MS_*` flags, without `MS_BIND`/`MS_REC`.
    pub flags: u64,
    /// Propagation flags (`MS_PRIVATE`, … possibly with `MS_REC`); 0 when none was given.
    pub propagation: u64,
    /// `Some(recursive)` when `bind` or `rbind` was given.
    pub bind: Option<bool>,
    /// The remaining words, comma-joined.
    pub data: String,
}

/// Why an option list was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OptionError {
    Unsupported(String),
    /// Two different propagation words: runc would apply both in turn, which is never what
    /// was meant.
    ConflictingPropagation(String),
}

/// Parses mount options in order, so that a later `rw` clears an earlier `ro`, as in runc.
pub(super) fn parse_options(options: &[String]) -> Result<Options, OptionError> {
    let mut parsed = Options::default();
    let mut data = Vec::new();
    for option in options {
        let effect = OPTIONS
            .iter()
            .find(|(name, _)| name == option)
            .map(|(_, effect)| *effect);
        match effect {
            Some(Effect::Set(flag)) => parsed.flags |= flag,
            Some(Effect::Clear(flag)) => parsed.flags &= !flag,
            // `rbind` wins over `bind` whatever the order, as runc ORs the flags.
            Some(Effect::Bind { recursive }) => {
                parsed.bind = Some(recursive || parsed.bind == Some(true));
            }
            Some(Effect::Propagation(flag)) => {
                if parsed.propagation != 0 && parsed.propagation != flag {
                    return Err(OptionError::ConflictingPropagation(option.clone()));
                }
                parsed.propagation = flag;
            }
            Some(Effect::Unsupported) => return Err(OptionError::Unsupported(option.clone())),
            None => data.push(option.as_str()),
        }
    }
    parsed.data = data.join(",");
    Ok(parsed)
}

/// The option words [`parse_options`] accepts.
pub(super) fn supported_options() -> impl Iterator<Item = &'static str> {
    OPTIONS
        .iter()
        .filter(|(_, effect)| !matches!(effect, Effect::Unsupported))
        .map(|(name, _)| *name)
}

/// Converts `mounts` in order; relative bind sources are taken relative to `bundle`.
pub(super) fn convert(
    mounts: Option<&[Mount]>,
    bundle: &Path,
) -> Result<Vec<MountSpec>, FieldError> {
    mounts
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(index, mount)| convert_one(index, mount, bundle))
        .collect()
}

fn convert_one(index: usize, mount: &Mount, bundle: &Path) -> Result<MountSpec, FieldError> {
    let destination = destination(index, mount.destination())?;
    for (field, mappings) in [
        ("uidMappings", mount.uid_mappings()),
        ("gidMappings", mount.gid_mappings()),
    ] {
        if mappings.as_ref().is_some_and(|list| !list.is_empty()) {
            return Err(FieldError::unsupported(format!("mounts[{index}].{field}")));
        }
    }
    let options =
        parse_options(mount.options().as_deref().unwrap_or_default()).map_err(|err| match err {
            OptionError::Unsupported(option) => FieldError::MountOption {
                index,
                destination: destination.clone(),
                option,
            },
            OptionError::ConflictingPropagation(option) => FieldError::invalid(
                format!("mounts[{index}].options"),
                option,
                "conflicts with an earlier propagation option",
            ),
        })?;
    let typ = mount.typ().as_deref().filter(|typ| !typ.is_empty());
    let bad_type = |typ: &str| FieldError::MountType {
        index,
        destination: destination.clone(),
        typ: typ.to_owned(),
    };
    let kind = match (typ, options.bind) {
        // As in runc, the `bind`/`rbind` option makes a bind mount; `none` is the traditional
        // type for one. Any other type next to it is a contradiction, not something to ignore.
        (None | Some("bind" | "none"), Some(recursive)) => MountKind::Bind { recursive },
        (Some("bind"), None) => MountKind::Bind { recursive: false },
        (Some(typ), Some(_)) => return Err(bad_type(typ)),
        (None, None) => return Err(FieldError::missing(format!("mounts[{index}].type"))),
        (Some(typ), None) => match typ {
            "tmpfs" => MountKind::Tmpfs,
            "proc" => MountKind::Proc,
            "sysfs" => MountKind::Sysfs,
            "devpts" => MountKind::Devpts,
            "mqueue" => MountKind::Mqueue,
            "cgroup" | "cgroup2" => MountKind::Cgroup,
            other => return Err(bad_type(other)),
        },
    };
    let source = mount
        .source()
        .as_ref()
        .filter(|source| !source.as_os_str().is_empty());
    let source = match (kind, source) {
        (MountKind::Bind { .. }, None) => {
            return Err(FieldError::missing(format!("mounts[{index}].source")))
        }
        (MountKind::Bind { .. }, Some(source)) => bundle.join(source),
        (_, Some(source)) => source.clone(),
        // For a pseudo filesystem the source is only a label; the type is the usual one.
        (_, None) => PathBuf::from(typ.unwrap_or_default()),
    };
    Ok(MountSpec {
        destination,
        kind,
        source,
        flags: options.flags,
        propagation: options.propagation,
        data: options.data,
    })
}

/// A destination as an absolute, `..`-free path; relative ones are relative to `/`.
fn destination(index: usize, given: &Path) -> Result<PathBuf, FieldError> {
    let invalid =
        |reason| FieldError::invalid(format!("mounts[{index}].destination"), given, reason);
    let mut path = PathBuf::from("/");
    for component in given.components() {
        match component {
            Component::Normal(name) => path.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(invalid("must not contain `..`"))
            }
        }
    }
    if path == Path::new("/") {
        return Err(invalid("must name a directory below `/`"));
    }
    Ok(path)
}

/// Puts the `/tmp` tmpfs of `com.runlambda.ephemeral-storage-mb` in place of any config mount
/// at `/tmp`. It goes before the first mount below `/tmp`, so that it does not hide those.
pub(super) fn set_tmp(mounts: &mut Vec<MountSpec>, mb: u32) {
    let tmp = Path::new("/tmp");
    mounts.retain(|mount| mount.destination != tmp);
    let at = mounts
        .iter()
        .position(|mount| mount.destination.starts_with(tmp))
        .unwrap_or(mounts.len());
    mounts.insert(
        at,
        MountSpec {
            destination: tmp.to_owned(),
            kind: MountKind::Tmpfs,
            source: PathBuf::from("tmpfs"),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            propagation: 0,
            data: format!("size={mb}m,mode=1777"),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::*;

    fn words(options: &str) -> Vec<String> {
        options
            .split(',')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn flags(list: &[u64]) -> u64 {
        list.iter().fold(0, |acc, flag| acc | flag)
    }

    #[test]
    fn option_table() {
        let cases: &[(&str, u64, u64, Option<bool>, &str)] = &[
            ("", 0, 0, None, ""),
            ("ro", flags(&[MS_RDONLY]), 0, None, ""),
            ("ro,rw", 0, 0, None, ""),
            ("rw,ro", flags(&[MS_RDONLY]), 0, None, ""),
            ("nosuid,suid", 0, 0, None, ""),
            (
                "nosuid,nodev,noexec",
                flags(&[MS_NOSUID, MS_NODEV, MS_NOEXEC]),
                0,
                None,
                "",
            ),
            ("noexec,exec,nodev,dev", 0, 0, None, ""),
            ("sync", flags(&[MS_SYNCHRONOUS]), 0, None, ""),
            ("sync,async", 0, 0, None, ""),
            ("remount,ro", flags(&[MS_REMOUNT, MS_RDONLY]), 0, None, ""),
            ("mand", flags(&[MS_MANDLOCK]), 0, None, ""),
            ("mand,nomand", 0, 0, None, ""),
            ("noatime", flags(&[MS_NOATIME]), 0, None, ""),
            ("noatime,atime", 0, 0, None, ""),
            ("nodiratime", flags(&[MS_NODIRATIME]), 0, None, ""),
            ("nodiratime,diratime", 0, 0, None, ""),
            ("relatime", flags(&[MS_RELATIME]), 0, None, ""),
            ("relatime,norelatime", 0, 0, None, ""),
            ("strictatime", flags(&[MS_STRICTATIME]), 0, None, ""),
            ("defaults", 0, 0, None, ""),
            ("bind", 0, 0, Some(false), ""),
            ("rbind", 0, 0, Some(true), ""),
            ("rbind,bind", 0, 0, Some(true), ""),
            ("bind,ro", flags(&[MS_RDONLY]), 0, Some(false), ""),
            ("private", 0, flags(&[MS_PRIVATE]), None, ""),
            ("rprivate", 0, flags(&[MS_PRIVATE, MS_REC]), None, ""),
            ("shared", 0, flags(&[MS_SHARED]), None, ""),
            ("rshared", 0, flags(&[MS_SHARED, MS_REC]), None, ""),
            ("slave", 0, flags(&[MS_SLAVE]), None, ""),
            ("rslave", 0, flags(&[MS_SLAVE, MS_REC]), None, ""),
            ("unbindable", 0, flags(&[MS_UNBINDABLE]), None, ""),
            ("runbindable", 0, flags(&[MS_UNBINDABLE, MS_REC]), None, ""),
            (
                "rbind,rprivate,rprivate",
                0,
                flags(&[MS_PRIVATE, MS_REC]),
                Some(true),
                "",
            ),
            (
                "nosuid,strictatime,mode=755,size=65536k",
                flags(&[MS_NOSUID, MS_STRICTATIME]),
                0,
                None,
                "mode=755,size=65536k",
            ),
            (
                "newinstance,ptmxmode=0666,mode=0620,gid=5",
                0,
                0,
                None,
                "newinstance,ptmxmode=0666,mode=0620,gid=5",
            ),
        ];
        for &(given, flags, propagation, bind, data) in cases {
            let expected = Options {
                flags,
                propagation,
                bind,
                data: data.to_owned(),
            };
            assert_eq!(
                parse_options(&words(given)),
                Ok(expected),
                "options {given:?}"
            );
        }
    }

    #[test]
    fn unsupported_and_conflicting_options() {
        for option in ["idmap", "ridmap", "tmpcopyup", "rro", "rnosuid", "rnoexec"] {
            assert_eq!(
                parse_options(&words(option)),
                Err(OptionError::Unsupported(option.to_owned()))
            );
        }
        assert_eq!(
            parse_options(&words("rprivate,shared")),
            Err(OptionError::ConflictingPropagation("shared".to_owned()))
        );
    }

    fn mount(json: &str) -> Mount {
        serde_json::from_str(json).unwrap()
    }

    fn one(json: &str) -> Result<MountSpec, FieldError> {
        convert_one(0, &mount(json), Path::new("/bundle"))
    }

    #[test]
    fn kinds_by_type() {
        for (typ, kind) in [
            ("tmpfs", MountKind::Tmpfs),
            ("proc", MountKind::Proc),
            ("sysfs", MountKind::Sysfs),
            ("devpts", MountKind::Devpts),
            ("mqueue", MountKind::Mqueue),
            ("cgroup", MountKind::Cgroup),
            ("cgroup2", MountKind::Cgroup),
        ] {
            let spec = one(&format!(r#"{{"destination": "/x", "type": "{typ}"}}"#)).unwrap();
            assert_eq!(spec.kind, kind);
            assert_eq!(spec.source, Path::new(typ), "source defaults to the type");
        }
    }

    #[test]
    fn bind_mounts() {
        let relative =
            one(r#"{"destination": "/data", "source": "data", "options": ["bind"]}"#).unwrap();
        assert_eq!(relative.kind, MountKind::Bind { recursive: false });
        assert_eq!(relative.source, Path::new("/bundle/data"));

        let typed = one(r#"{"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": ["rbind", "ro", "rprivate"]}"#).unwrap();
        assert_eq!(typed.kind, MountKind::Bind { recursive: true });
        assert_eq!(typed.source, Path::new("/etc/hosts"));
        assert_eq!(typed.flags, MS_RDONLY);
        assert_eq!(typed.propagation, MS_PRIVATE | MS_REC);

        let bare = one(r#"{"destination": "/x", "type": "bind", "source": "/y"}"#).unwrap();
        assert_eq!(bare.kind, MountKind::Bind { recursive: false });

        let none =
            one(r#"{"destination": "/x", "type": "none", "source": "/y", "options": ["rbind"]}"#)
                .unwrap();
        assert_eq!(none.kind, MountKind::Bind { recursive: true });
    }

    #[test]
    fn bad_types_name_destination_and_type() {
        let err = one(r#"{"destination": "/merged", "type": "overlay", "source": "overlay"}"#)
            .unwrap_err();
        assert!(
            matches!(&err, FieldError::MountType { typ, .. } if typ == "overlay"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("mounts[0] at /merged: type \"overlay\" is not supported"),
            "{err}"
        );

        let err =
            one(r#"{"destination": "/x", "type": "tmpfs", "options": ["bind"]}"#).unwrap_err();
        assert!(
            matches!(&err, FieldError::MountType { typ, .. } if typ == "tmpfs"),
            "{err:?}"
        );

        let err = one(r#"{"destination": "/x", "type": "none"}"#).unwrap_err();
        assert!(
            matches!(&err, FieldError::MountType { typ, .. } if typ == "none"),
            "{err:?}"
        );

        let err = one(r#"{"destination": "/x", "source": "/y"}"#).unwrap_err();
        assert!(err.to_string().starts_with("mounts[0].type"), "{err}");

        let err = one(r#"{"destination": "/x", "options": ["bind"]}"#).unwrap_err();
        assert!(err.to_string().starts_with("mounts[0].source"), "{err}");
    }

    #[test]
    fn bad_option_names_mount_and_option() {
        let err = one(r#"{"destination": "/x", "type": "bind", "source": "/y", "options": ["rbind", "idmap"]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mounts[0] at /x: option \"idmap\" is not supported"
        );
    }

    #[test]
    fn id_mapped_mounts_are_unsupported() {
        let err = one(r#"{"destination": "/x", "type": "bind", "source": "/y", "options": ["bind"], "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}"#).unwrap_err();
        assert!(
            matches!(&err, FieldError::Unsupported { field } if field == "mounts[0].uidMappings"),
            "{err:?}"
        );
    }

    #[test]
    fn destinations() {
        for (given, expected) in [
            ("/dev/shm", "/dev/shm"),
            ("dev/shm", "/dev/shm"),
            ("/a/./b/", "/a/b"),
        ] {
            assert_eq!(
                destination(0, Path::new(given)).unwrap(),
                Path::new(expected)
            );
        }
        for bad in ["/a/../etc", "..", "", "/"] {
            let err = destination(2, Path::new(bad)).unwrap_err();
            assert!(
                err.to_string().starts_with("mounts[2].destination"),
                "{bad}: {err}"
            );
        }
    }

    fn at(destination: &str) -> MountSpec {
        MountSpec {
            destination: destination.into(),
            kind: MountKind::Tmpfs,
            source: "tmpfs".into(),
            flags: 0,
            propagation: 0,
            data: String::new(),
        }
    }

    #[test]
    fn tmp_is_added_with_its_size() {
        let mut mounts = vec![at("/proc")];
        set_tmp(&mut mounts, 1024);
        assert_eq!(mounts.len(), 2);
        let tmp = &mounts[1];
        assert_eq!(tmp.destination, Path::new("/tmp"));
        assert_eq!(tmp.kind, MountKind::Tmpfs);
        assert_eq!(tmp.data, "size=1024m,mode=1777");
        assert_eq!(tmp.flags, MS_NOSUID | MS_NODEV);
    }

    #[test]
    fn tmp_replaces_a_config_mount_and_stays_under_nested_ones() {
        let mut mounts = vec![
            at("/proc"),
            at("/tmp"),
            at("/tmpx"),
            at("/tmp/api"),
            at("/dev"),
        ];
        set_tmp(&mut mounts, 512);
        let destinations: Vec<_> = mounts
            .iter()
            .map(|m| m.destination.to_str().unwrap())
            .collect();
        assert_eq!(destinations, ["/proc", "/tmpx", "/tmp", "/tmp/api", "/dev"]);
        assert_eq!(mounts[2].data, "size=512m,mode=1777");
    }
}
