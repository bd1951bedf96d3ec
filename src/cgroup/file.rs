//! Reading and writing one cgroup interface file, written once so that every caller gets errors
//! that name the file.
//!
//! Writes open the file without `O_CREAT`: cgroupfs cannot create files, and with `O_CREAT` a
//! missing interface file would fail with `EACCES` instead of the `ENOENT` that tells an absent
//! optional file (no swap accounting, a kernel without `cgroup.kill`) from a real failure.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;

use super::CgroupError;

/// The whole content of `path`.
pub(super) fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The whole content of `path`, or `None` when it does not exist.
pub(super) fn read_if_present(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `value` to the existing file `path`.
pub(super) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    open_for_write(path)
        .and_then(|file| write_value(file, value))
        .map_err(|source| write_error(path, value, source))
}

/// Writes `value` to `path` if that file exists; returns whether it did.
pub(super) fn write_if_present(path: &Path, value: &str) -> Result<bool, CgroupError> {
    // Only a failed open means "absent": a write can fail with ENOENT too (`+memory` in
    // cgroup.subtree_control where memory is bound to v1), and that is an error.
    let file = match open_for_write(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(write_error(path, value, source)),
    };
    write_value(file, value).map_err(|source| write_error(path, value, source))?;
    Ok(true)
}

/// Opens the existing file `path` for a [`write_to`] later, perhaps by another process.
pub(super) fn open_for_writing(path: &Path) -> Result<File, CgroupError> {
    open_for_write(path).map_err(|source| CgroupError::Open {
        path: path.to_owned(),
        source,
    })
}

/// Writes `value` to `file`, opened from `path` with [`open_for_writing`].
pub(super) fn write_to(file: File, path: &Path, value: &str) -> Result<(), CgroupError> {
    write_value(file, value).map_err(|source| write_error(path, value, source))
}

fn open_for_write(path: &Path) -> io::Result<File> {
    // O_TRUNC is what runc uses too: cgroupfs ignores it, and a plain file in a test needs it.
    OpenOptions::new().write(true).truncate(true).open(path)
}

/// One write(2) carrying the whole value: the kernel parses each write on its own.
fn write_value(mut file: File, value: &str) -> io::Result<()> {
    file.write_all(value.as_bytes())
}

fn write_error(path: &Path, value: &str, source: io::Error) -> CgroupError {
    CgroupError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    }
}
