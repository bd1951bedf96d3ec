//! Fake hierarchies in a temporary directory for the unit tests: plain directories holding the
//! interface files the code reads, so tests can check what it wrote without privilege.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::CgroupHost;

/// A host whose hierarchies are directories of `dir`.
pub(super) struct FakeHost {
    dir: TempDir,
    pub(super) host: CgroupHost,
}

impl FakeHost {
    /// cgroup2 at `<dir>/unified` offering only hugetlb, and a v1 hierarchy at `<dir>/<name>`
    /// for each of `v1`.
    pub(super) fn hybrid(v1: &[&str]) -> FakeHost {
        let dir = tempfile::tempdir().unwrap();
        let mut text = format!(
            "41 31 0:38 / {}/unified rw - cgroup2 cgroup2 rw\n",
            dir.path().display()
        );
        for name in v1 {
            fs::create_dir(dir.path().join(name)).unwrap();
            text += &format!(
                "32 31 0:29 / {}/{name} rw - cgroup cgroup rw,{name}\n",
                dir.path().display()
            );
        }
        Self::with_unified(dir, "unified", "hugetlb\n", &text)
    }

    /// cgroup2 at `dir` offering `controllers`, none enabled yet.
    pub(super) fn pure_v2(controllers: &str) -> FakeHost {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "25 22 0:22 / {} rw - cgroup2 cgroup2 rw\n",
            dir.path().display()
        );
        Self::with_unified(dir, "", controllers, &text)
    }

    fn with_unified(dir: TempDir, unified: &str, controllers: &str, text: &str) -> FakeHost {
        let root = dir.path().join(unified);
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("cgroup.controllers"), controllers).unwrap();
        fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        FakeHost {
            host: CgroupHost::from_mountinfo(text).unwrap(),
            dir,
        }
    }

    /// `rel` under the temporary directory.
    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Makes directory `rel` holding `files` (name, content).
    pub(super) fn make(&self, rel: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(rel);
        fs::create_dir_all(&dir).unwrap();
        for (name, content) in files {
            fs::write(dir.join(name), content).unwrap();
        }
        dir
    }
}

/// The content of `dir/name`.
pub(super) fn content(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap()
}
