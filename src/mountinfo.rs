//! The mount table as the kernel reports it in `/proc/<pid>/mountinfo` (proc(5)): one parsed
//! entry per line, with the octal escapes of paths undone. Parsing is pure; callers read the
//! file themselves so that their errors name it, and tests feed sample text.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// The mount table of the calling process.
pub const SELF_MOUNTINFO: &str = "/proc/self/mountinfo";

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The directory of the mounted filesystem that appears at `mount_point` (`/` unless it is a
    /// bind mount of a subtree or seen from inside a cgroup namespace).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Filesystem type, e.g. `cgroup2`, `tmpfs`.
    pub fstype: String,
    /// Filesystem-specific source, e.g. a device or `none`.
    pub source: String,
    /// Per-superblock options; for a cgroup v1 mount these name its controllers (`rw,memory`).
    pub super_options: String,
}

impl MountEntry {
    /// Whether `option` is one of the comma-separated super options.
    pub fn has_super_option(&self, option: &str) -> bool {
        self.super_options.split(',').any(|o| o == option)
    }
}

/// A line that does not have the shape proc(5) documents.
#[derive(Debug, thiserror::Error)]
#[error("line {line_number} of the mount table is malformed: {line:?}")]
pub struct MountinfoError {
    /// 1-based.
    pub line_number: usize,
    pub line: String,
}

/// Parses mountinfo text, keeping the kernel's order (a later mount on the same point covers an
/// earlier one).
pub fn parse(text: &str) -> Result<Vec<MountEntry>, MountinfoError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            parse_line(line).ok_or_else(|| MountinfoError {
                line_number: index + 1,
                line: line.to_owned(),
            })
        })
        .collect()
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`: six fixed
/// fields, any number of optional fields ended by `-`, then three more.
fn parse_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    let _mount_id = fields.next()?;
    let _parent_id = fields.next()?;
    let _major_minor = fields.next()?;
    let root = fields.next()?;
    let mount_point = fields.next()?;
    let _mount_options = fields.next()?;
    fields.by_ref().find(|field| *field == "-")?;
    let fstype = fields.next()?;
    let source = fields.next()?;
    let super_options = fields.next()?;
    if fields.next().is_some() {
        return None;
    }
    Some(MountEntry {
        root: unescape(root)?,
        mount_point: unescape(mount_point)?,
        fstype: fstype.to_owned(),
        source: source.to_owned(),
        super_options: super_options.to_owned(),
    })
}

/// The kernel writes space, tab, newline and backslash in paths as `\ooo` octal escapes; the
/// result may not be UTF-8, hence bytes.
fn unescape(field: &str) -> Option<PathBuf> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = bytes.get(i + 1..i + 4)?;
            let text = std::str::from_utf8(digits).ok()?;
            out.push(u8::from_str_radix(text, 8).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(PathBuf::from(OsString::from_vec(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixed_optional_and_trailing_fields() {
        let text = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let entries = parse(text).unwrap();
        assert_eq!(
            entries,
            vec![
                MountEntry {
                    root: "/mnt1".into(),
                    mount_point: "/mnt2".into(),
                    fstype: "ext3".into(),
                    source: "/dev/root".into(),
                    super_options: "rw,errors=continue".into(),
                },
                MountEntry {
                    root: "/".into(),
                    mount_point: "/sys/fs/cgroup/unified".into(),
                    fstype: "cgroup2".into(),
                    source: "cgroup2".into(),
                    super_options: "rw".into(),
                },
            ]
        );
    }

    #[test]
    fn undoes_octal_escapes_in_paths() {
        let text = r"50 23 0:45 /a\134b /mnt/with\040space\011tab rw - tmpfs tmpfs rw";
        let entry = &parse(text).unwrap()[0];
        assert_eq!(entry.root, PathBuf::from(r"/a\b"));
        assert_eq!(entry.mount_point, PathBuf::from("/mnt/with space\ttab"));
    }

    #[test]
    fn super_options_are_matched_whole() {
        let text = "34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset";
        let entry = &parse(text).unwrap()[0];
        assert!(entry.has_super_option("cpuset"));
        assert!(!entry.has_super_option("cpu"));
    }

    #[test]
    fn a_line_without_separator_or_with_extra_fields_is_an_error() {
        let err = parse("ok\n\n1 2 3:4 / /x rw shared:1 tmpfs tmpfs rw").unwrap_err();
        assert_eq!(err.line_number, 1);
        let err = parse("\n1 2 3:4 / /x rw - tmpfs tmpfs rw extra").unwrap_err();
        assert_eq!(err.line_number, 2);
        assert_eq!(
            err.to_string(),
            "line 2 of the mount table is malformed: \"1 2 3:4 / /x rw - tmpfs tmpfs rw extra\""
        );
        let err = parse(r"1 2 3:4 / /x\04 rw - tmpfs tmpfs rw").unwrap_err();
        assert_eq!(err.line_number, 1);
    }
}
