//! `state/apply.lock`: one process applies batches to the target at a time. The
//! service takes it around each batch it applies; `apply` and `import` hold it for their
//! whole run, so that on a server target (where nothing else would serialize them) a
//! batch applied by hand and the service never race for the same seq, and the service's
//! start never empties the staging folder of an `apply` that is running. An advisory
//! lock (flock) on a private file, never followed through a symlink; released when the
//! holder ends, however it ends.

use std::fs::File;
use std::path::Path;

use gapsync_common::fsx;

/// The held lock (released on drop).
#[derive(Debug)]
pub(crate) struct ApplyLock {
    _file: File,
}

fn open(work_dir: &Path) -> std::io::Result<File> {
    let state = work_dir.join("state");
    fsx::private_dir(&state).map_err(std::io::Error::from)?;
    fsx::open_append_private(&state.join("apply.lock"))
}

impl ApplyLock {
    /// Waits for the lock.
    pub(crate) fn acquire(work_dir: &Path) -> std::io::Result<ApplyLock> {
        let f = open(work_dir)?;
        f.lock()?;
        Ok(ApplyLock { _file: f })
    }

    /// The lock if nobody holds it now.
    pub(crate) fn try_acquire(work_dir: &Path) -> std::io::Result<Option<ApplyLock>> {
        let f = open(work_dir)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(ApplyLock { _file: f })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// While one holder has it, nobody else gets it; once dropped, the next does.
    #[test]
    fn one_holder_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let held = ApplyLock::acquire(d.path()).unwrap();
        assert!(ApplyLock::try_acquire(d.path()).unwrap().is_none());
        drop(held);
        let again = ApplyLock::try_acquire(d.path()).unwrap();
        assert!(again.is_some());
    }
}
