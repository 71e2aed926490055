//! File-system rules both services share: what they create is private to the service
//! user, and the paths they create or read in their work directories never follow a
//! symbolic link.
//!
//! - [`private_dir`]: a directory with mode `0700` (an existing one is tightened; a
//!   symlink or a non-directory at the path is refused).
//! - [`create_private`]: a new file with mode `0600`, opened `O_CREAT | O_EXCL |
//!   O_NOFOLLOW`: anything already at the path, a symlink included, makes it fail.
//! - [`open_nofollow`]: an existing file opened for reading, refused if it is a symlink.
//! - [`open_append_private`]: a file opened for appending (created `0600`), refused if
//!   it is a symlink.
//! - [`write_private_synced`]: a whole small file (a `.reason`, a marker) written durably
//!   under a temp name and renamed over the path.
//! - [`move_file`]: a rename, or across file systems a durable copy; [`sync_dir`].
//!
//! The modes are the most a file or directory gets: the process umask can only take bits
//! away (the systemd units set `UMask=0077`).
//!
//! `O_NOFOLLOW` guards the last component of a path only. The directories above it are
//! the service's own, made by [`private_dir`] (which refuses a symlink); the work
//! directory itself may sit behind a symlink an administrator put there.
//!
//! Like `std::fs`, the file functions return [`io::Error`]s that do not name the path
//! (the caller's error does); a refused symlink is an error carrying [`SymlinkRefused`]
//! (see [`is_symlink_refusal`]). [`private_dir`]'s [`DirError`] names the path.
//!
//! Unix only (the services run under systemd). This module knows nothing of batches,
//! spools, quarantines or audit files, and opens no sockets.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of every directory the services create.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the services create.
pub const FILE_MODE: u32 = 0o600;
/// Name prefix of [`write_private_synced`]'s and [`move_file`]'s temp files (in the
/// destination's directory). A crash can leave one behind; see [`is_temp_name`].
pub const TEMP_PREFIX: &str = ".fsx-tmp-";

/// Why [`private_dir`] refused or failed; every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path}: is a symbolic link; refusing it as a work directory (make it a real directory)"
    )]
    Symlink { path: PathBuf },
    #[error("{path}: exists and is not a directory")]
    NotADirectory { path: PathBuf },
}

impl DirError {
    /// The directory concerned.
    pub fn path(&self) -> &Path {
        match self {
            DirError::Io { path, .. }
            | DirError::Symlink { path }
            | DirError::NotADirectory { path } => path,
        }
    }

    /// The same error as an [`io::Error`] that does not repeat the path, for a caller
    /// whose own error names it.
    pub fn into_io(self) -> io::Error {
        match self {
            DirError::Io { source, .. } => source,
            DirError::Symlink { .. } => io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link; refusing it as a work directory (make it a real directory)",
            ),
            DirError::NotADirectory { .. } => io::Error::new(
                io::ErrorKind::NotADirectory,
                "exists and is not a directory",
            ),
        }
    }
}

impl From<DirError> for io::Error {
    /// Keeps the kind; the message names the path.
    fn from(e: DirError) -> io::Error {
        let kind = match &e {
            DirError::Io { source, .. } => source.kind(),
            DirError::Symlink { .. } => io::ErrorKind::InvalidInput,
            DirError::NotADirectory { .. } => io::ErrorKind::NotADirectory,
        };
        io::Error::new(kind, e)
    }
}

/// The error inside an [`io::Error`] when a path that must not be a symbolic link is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is a symbolic link: refusing to follow it")]
pub struct SymlinkRefused;

/// Whether `e` is a refused symbolic link ([`SymlinkRefused`]).
pub fn is_symlink_refusal(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<SymlinkRefused>())
}

/// Whether a file name is a temp name of this module ([`TEMP_PREFIX`]): a leftover of a
/// crash in [`write_private_synced`] or [`move_file`], safe to delete at start.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Turns the error of an `O_NOFOLLOW` / `O_EXCL` open into [`SymlinkRefused`] (same
/// kind) when what is at the path is a symlink.
fn refuse_symlink(path: &Path, e: io::Error) -> io::Error {
    let maybe_link =
        e.raw_os_error() == Some(libc::ELOOP) || e.kind() == io::ErrorKind::AlreadyExists;
    if maybe_link && is_symlink(path) {
        io::Error::new(e.kind(), SymlinkRefused)
    } else {
        e
    }
}

/// Creates the directory `path` (and missing parents) with mode `0700`; if it exists,
/// refuses it when it is a symlink (by [`fs::symlink_metadata`]) or not a directory, and
/// tightens its mode to `0700` (a `0755` directory of an earlier version becomes
/// `0700`).
///
/// The mode is checked and changed through a descriptor of the directory opened
/// `O_NOFOLLOW | O_DIRECTORY`, so a symlink swapped in after the check is refused, never
/// chmod-ed through. Changing the mode of a directory the service user does not own
/// fails (`EPERM`) and is returned.
pub fn private_dir(path: &Path) -> Result<(), DirError> {
    let io_err = |source| DirError::Io {
        path: path.to_owned(),
        source,
    };
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(DirError::Symlink {
                path: path.to_owned(),
            });
        }
        Ok(m) if !m.is_dir() => {
            return Err(DirError::NotADirectory {
                path: path.to_owned(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(path)
            .map_err(io_err)?,
        Err(e) => return Err(io_err(e)),
    }
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) && is_symlink(path) {
                DirError::Symlink {
                    path: path.to_owned(),
                }
            } else if e.raw_os_error() == Some(libc::ENOTDIR) {
                DirError::NotADirectory {
                    path: path.to_owned(),
                }
            } else {
                io_err(e)
            }
        })?;
    let mode = dir.metadata().map_err(io_err)?.permissions().mode();
    if mode & 0o7777 != DIR_MODE {
        dir.set_permissions(fs::Permissions::from_mode(DIR_MODE))
            .map_err(io_err)?;
    }
    Ok(())
}

/// Creates a new file for writing with mode `0600`: `O_CREAT | O_EXCL | O_NOFOLLOW`.
/// Fails with [`io::ErrorKind::AlreadyExists`] when anything is at the path; when that
/// is a symlink the error carries [`SymlinkRefused`]. The link's target is never
/// created nor touched.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| refuse_symlink(path, e))
}

/// Opens an existing file for reading with `O_NOFOLLOW`: a symlink at the path is
/// refused with an error carrying [`SymlinkRefused`], never followed.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| refuse_symlink(path, e))
}

/// Opens a file someone else may control (an inbox, a medium) for reading: no symlink
/// followed, `O_NONBLOCK` so that a FIFO or a device cannot block the open, and through
/// the descriptor it must be a regular file of at most `max` bytes. Read it with
/// [`read_capped`]/[`copy_capped`]: it may still grow after this check.
pub fn open_regular_capped(path: &Path, max: u64) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| refuse_symlink(path, e))?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a regular file", path.display()),
        ));
    }
    if m.len() > max {
        return Err(too_large(path, max));
    }
    Ok(f)
}

fn too_large(path: &Path, max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("{}: larger than the limit of {max} bytes", path.display()),
    )
}

/// Copies at most `max` bytes of `src` into `dst`; more is an error (a file that grew
/// after its size was checked).
pub fn copy_capped(src: &mut File, dst: &mut File, max: u64, path: &Path) -> io::Result<u64> {
    use std::io::Read;
    let n = io::copy(&mut src.take(max + 1), dst)?;
    if n > max {
        return Err(too_large(path, max));
    }
    Ok(n)
}

/// Copies a file someone else may control (see [`open_regular_capped`]) to a new
/// private file `to` (temp, fsync, rename, directory fsync); at most `max` bytes.
pub fn copy_new_capped(from: &Path, to: &Path, max: u64) -> io::Result<u64> {
    if fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists already", to.display()),
        ));
    }
    let mut src = open_regular_capped(from, max)?;
    let (tmp, mut dst) = create_temp_beside(to)?;
    let copied = copy_capped(&mut src, &mut dst, max, from).and_then(|n| {
        dst.sync_all()?;
        drop(dst);
        fs::rename(&tmp, to)?;
        Ok(n)
    });
    match copied {
        Ok(n) => {
            sync_dir(parent_of(to))?;
            Ok(n)
        }
        Err(e) => {
            // The copy's error is the one reported; a temp name is never read as the file.
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Opens a file for appending, creating it with mode `0600` if missing, with
/// `O_NOFOLLOW`: a symlink at the path is refused with an error carrying
/// [`SymlinkRefused`], never followed. An existing file with group or other bits (made
/// by an earlier version) is tightened to `0600` through the descriptor.
pub fn open_append_private(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| refuse_symlink(path, e))?;
    let mode = f.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(f)
}

/// Fsyncs a directory (after a rename or a create in it, so the entry is durable).
pub fn sync_dir(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)?
        .sync_all()
}

/// The directory a path's entry lives in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates a new private temp file beside `path`: `<dir>/.fsx-tmp-<name>-<pid>-<n>`.
/// A stale name left by a crash of an earlier process with the same pid is skipped.
fn create_temp_beside(path: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let dir = parent_of(path);
    let mut last = None;
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(TEMP_PREFIX);
        tmp_name.push(name);
        tmp_name.push(format!("-{}-{n}", std::process::id()));
        let tmp = dir.join(tmp_name);
        match create_private(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temp name")))
}

/// Writes `data` as the whole content of `path`, durably, with mode `0600`: a new temp
/// file in the same directory ([`create_private`]: `O_EXCL | O_NOFOLLOW`), write, fsync,
/// rename over `path`, fsync the directory.
///
/// The rename replaces whatever entry is at `path`, a symlink itself included (never
/// its target); a directory at `path` makes it fail. On failure nothing is left at the
/// temp name, nor at `path` (also when only the directory fsync failed: the file is
/// removed again; a file that was at `path` before is then gone too).
pub fn write_private_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let (tmp, mut f) = create_temp_beside(path)?;
    let written = f.write_all(data).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        // The write's error is the one reported; a temp name left behind is never
        // read as the file (its name is `.fsx-tmp-..`, see `create_temp_beside`).
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = sync_dir(parent_of(path)) {
        // As above: the fsync's error is the one reported.
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

/// Moves a file: a rename, or, when `to` is on another file system (a spool or a
/// quarantine mounted on its own, e.g. a size-limited tmpfs), a durable copy, then the
/// source removed. A failed copy leaves the source as it was and no partial destination.
///
/// The rename moves the entry itself (a symlink at `from` is moved as a link, not
/// followed) and replaces the entry at `to` (a symlink there is replaced, its target not
/// touched). The copy opens `from` with [`open_nofollow`] (a symlink is refused), writes
/// a new `0600` temp file beside `to` ([`create_private`]), fsyncs it and renames it
/// over `to`. Like the rename, it does not fsync the directories: the caller does
/// ([`sync_dir`]) when the move must survive a crash.
pub fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => copy_then_remove(from, to),
        other => other,
    }
}

/// Copies `from` (opened without following a symlink) to a new file `to`, durably: a
/// private temp file beside `to` (`.fsx-tmp-..`, a dot name a folder's reader skips),
/// fsynced, renamed, and the directory fsynced. Refuses (`AlreadyExists`) when anything
/// is at `to` when it starts (the caller decides whether an existing one is the same);
/// the final rename would replace an entry created at `to` meanwhile, so `to`'s folder
/// must not have another writer of the same names. A failed copy leaves nothing at `to`.
pub fn copy_new(from: &Path, to: &Path) -> io::Result<()> {
    if fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists already", to.display()),
        ));
    }
    copy_via_temp(from, to)?;
    sync_dir(parent_of(to))
}

/// Whether this process can create a file in `dir` (or, if `dir` does not exist yet,
/// in its nearest existing ancestor, where it would be created): a private probe file
/// (`.gapsync-check-<pid>`), removed at once.
pub fn check_writable(dir: &Path) -> io::Result<()> {
    let mut d = dir;
    while fs::symlink_metadata(d).is_err() {
        d = d.parent().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no existing parent", dir.display()),
            )
        })?;
    }
    let probe = d.join(format!(".gapsync-check-{}", std::process::id()));
    create_private(&probe).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{} is not writable for this user: {e}", d.display()),
        )
    })?;
    // The probe exists only to be removed; a failure here leaves a hidden empty file.
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// [`move_file`]'s cross-device path.
fn copy_then_remove(from: &Path, to: &Path) -> io::Result<()> {
    copy_via_temp(from, to)?;
    fs::remove_file(from)
}

/// Copies `from` (no symlink followed) into a new private temp file beside `to`,
/// fsyncs it and renames it to `to`; on failure nothing is at `to` and the source is
/// untouched.
fn copy_via_temp(from: &Path, to: &Path) -> io::Result<()> {
    let mut src = open_nofollow(from)?;
    let (tmp, mut dst) = create_temp_beside(to)?;
    let copied = io::copy(&mut src, &mut dst)
        .and_then(|_| dst.sync_all())
        .and_then(|()| {
            drop(dst);
            fs::rename(&tmp, to)
        });
    if let Err(e) = copied {
        // The copy's error is the one reported; a temp name left behind is never read
        // as the file.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).expect("read")
    }

    // ---------------------------------------------------------------- private_dir

    #[test]
    fn private_dir_creates_the_directory_and_its_parents_0700() {
        let t = tempfile::tempdir().expect("tempdir");
        let d = t.path().join("work/spool");
        private_dir(&d).expect("create");
        assert!(d.is_dir());
        assert_eq!(mode_of(&d), 0o700);
        assert_eq!(mode_of(&t.path().join("work")), 0o700);
        private_dir(&d).expect("again: exists is fine");
    }

    #[test]
    fn private_dir_tightens_an_existing_directory() {
        let t = tempfile::tempdir().expect("tempdir");
        let d = t.path().join("spool");
        fs::create_dir(&d).expect("mkdir");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(d.join("kept"), "x").expect("write");
        private_dir(&d).expect("tighten");
        assert_eq!(mode_of(&d), 0o700);
        assert_eq!(read(&d.join("kept")), "x");
    }

    #[test]
    fn private_dir_refuses_a_symlinked_directory_and_leaves_its_target_alone() {
        let t = tempfile::tempdir().expect("tempdir");
        let elsewhere = t.path().join("elsewhere");
        fs::create_dir(&elsewhere).expect("mkdir");
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o755)).expect("chmod");
        let d = t.path().join("spool");
        symlink(&elsewhere, &d).expect("symlink");
        let e = private_dir(&d).expect_err("symlink refused");
        assert!(matches!(e, DirError::Symlink { .. }), "{e:?}");
        assert_eq!(e.path(), d);
        let text = e.to_string();
        assert!(
            text.contains("spool") && text.contains("symbolic link"),
            "{text}"
        );
        assert_eq!(
            mode_of(&elsewhere),
            0o755,
            "the link's target is not chmod-ed"
        );
        let io: io::Error = e.into();
        assert!(io.to_string().contains("spool"), "{io}");
    }

    #[test]
    fn private_dir_refuses_a_dangling_symlink_and_creates_nothing() {
        let t = tempfile::tempdir().expect("tempdir");
        let target = t.path().join("nowhere");
        let d = t.path().join("quarantine");
        symlink(&target, &d).expect("symlink");
        let e = private_dir(&d).expect_err("refused");
        assert!(matches!(e, DirError::Symlink { .. }), "{e:?}");
        assert!(!target.exists(), "nothing created through the link");
    }

    #[test]
    fn private_dir_refuses_an_existing_file() {
        let t = tempfile::tempdir().expect("tempdir");
        let d = t.path().join("spool");
        fs::write(&d, "not a dir").expect("write");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = private_dir(&d).expect_err("file refused");
        assert!(matches!(e, DirError::NotADirectory { .. }), "{e:?}");
        assert!(e.to_string().contains("not a directory"), "{e}");
        assert_eq!(e.into_io().kind(), io::ErrorKind::NotADirectory);
        assert_eq!(mode_of(&d), 0o644, "the file is left as it was");
    }

    #[test]
    fn private_dir_below_a_file_is_an_io_error_naming_the_path() {
        let t = tempfile::tempdir().expect("tempdir");
        fs::write(t.path().join("work"), "x").expect("write");
        let d = t.path().join("work/spool");
        let e = private_dir(&d).expect_err("parent is a file");
        assert!(matches!(e, DirError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains("work/spool"), "{e}");
    }

    // ---------------------------------------------------------------- create_private

    #[test]
    fn create_private_makes_a_new_0600_file() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("f");
        let mut f = create_private(&p).expect("create");
        f.write_all(b"data").expect("write");
        drop(f);
        assert_eq!(read(&p), "data");
        assert_eq!(mode_of(&p), 0o600);
    }

    #[test]
    fn create_private_refuses_an_existing_file_and_keeps_it() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("f");
        fs::write(&p, "old").expect("write");
        let e = create_private(&p).expect_err("exists");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(!is_symlink_refusal(&e));
        assert_eq!(read(&p), "old");
    }

    #[test]
    fn create_private_refuses_a_symlink_to_an_existing_file() {
        let t = tempfile::tempdir().expect("tempdir");
        let victim = t.path().join("victim");
        fs::write(&victim, "precious").expect("write");
        let p = t.path().join("f");
        symlink(&victim, &p).expect("symlink");
        let e = create_private(&p).expect_err("symlink refused");
        assert!(is_symlink_refusal(&e), "{e:?}");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(read(&victim), "precious");
    }

    #[test]
    fn create_private_refuses_a_dangling_symlink_and_creates_no_target() {
        let t = tempfile::tempdir().expect("tempdir");
        let target = t.path().join("outside");
        let p = t.path().join("f");
        symlink(&target, &p).expect("symlink");
        let e = create_private(&p).expect_err("refused");
        assert!(is_symlink_refusal(&e), "{e:?}");
        assert!(!target.exists(), "the link's target was not created");
    }

    #[test]
    fn create_private_in_a_symlinked_directory_is_refused_by_private_dir_first() {
        // O_NOFOLLOW guards the last component only; the directory rule is private_dir's.
        let t = tempfile::tempdir().expect("tempdir");
        let elsewhere = t.path().join("elsewhere");
        fs::create_dir(&elsewhere).expect("mkdir");
        let spool = t.path().join("spool");
        symlink(&elsewhere, &spool).expect("symlink");
        assert!(private_dir(&spool).is_err());
        assert!(names(&elsewhere).is_empty());
    }

    // ---------------------------------------------------------------- open_nofollow

    #[test]
    fn open_nofollow_reads_a_file() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("f");
        fs::write(&p, "content").expect("write");
        let mut s = String::new();
        open_nofollow(&p)
            .expect("open")
            .read_to_string(&mut s)
            .expect("read");
        assert_eq!(s, "content");
    }

    #[test]
    fn open_nofollow_refuses_a_symlink_to_a_file() {
        let t = tempfile::tempdir().expect("tempdir");
        let secret = t.path().join("secret");
        fs::write(&secret, "secret").expect("write");
        let p = t.path().join("f");
        symlink(&secret, &p).expect("symlink");
        let e = open_nofollow(&p).expect_err("refused");
        assert!(is_symlink_refusal(&e), "{e:?}");
        assert_eq!(e.to_string(), "is a symbolic link: refusing to follow it");
    }

    #[test]
    fn open_nofollow_refuses_a_symlink_to_a_directory() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("d");
        symlink(t.path(), &p).expect("symlink");
        let e = open_nofollow(&p).expect_err("refused");
        assert!(is_symlink_refusal(&e), "{e:?}");
    }

    #[test]
    fn open_nofollow_of_a_missing_file_is_not_found() {
        let t = tempfile::tempdir().expect("tempdir");
        let e = open_nofollow(&t.path().join("missing")).expect_err("missing");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(!is_symlink_refusal(&e));
    }

    // ---------------------------------------------------------------- open_append_private

    #[test]
    fn open_append_private_creates_0600_appends_and_tightens() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("log");
        open_append_private(&p)
            .expect("create")
            .write_all(b"a\n")
            .expect("write");
        assert_eq!(mode_of(&p), 0o600);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        open_append_private(&p)
            .expect("open")
            .write_all(b"b\n")
            .expect("write");
        assert_eq!(read(&p), "a\nb\n");
        assert_eq!(mode_of(&p), 0o600);
    }

    #[test]
    fn open_append_private_refuses_a_symlink() {
        let t = tempfile::tempdir().expect("tempdir");
        let victim = t.path().join("victim");
        fs::write(&victim, "precious").expect("write");
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).expect("chmod");
        let p = t.path().join("log");
        symlink(&victim, &p).expect("symlink");
        let e = open_append_private(&p).expect_err("refused");
        assert!(is_symlink_refusal(&e), "{e:?}");
        assert_eq!(read(&victim), "precious");
        assert_eq!(mode_of(&victim), 0o644);
        let dangling = t.path().join("dangling");
        let nowhere = t.path().join("nowhere");
        symlink(&nowhere, &dangling).expect("symlink");
        let e = open_append_private(&dangling).expect_err("refused");
        assert!(is_symlink_refusal(&e), "{e:?}");
        assert!(!nowhere.exists(), "the link's target was not created");
    }

    // ---------------------------------------------------------------- write_private_synced

    #[test]
    fn write_private_synced_writes_a_new_0600_file_and_leaves_no_temp() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("x.sql.reason");
        write_private_synced(&p, b"failed twice\n").expect("write");
        assert_eq!(read(&p), "failed twice\n");
        assert_eq!(mode_of(&p), 0o600);
        assert_eq!(names(t.path()), ["x.sql.reason"]);
    }

    #[test]
    fn write_private_synced_replaces_an_existing_file() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("marker");
        fs::write(&p, "old and longer").expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private_synced(&p, b"new").expect("write");
        assert_eq!(read(&p), "new");
        assert_eq!(mode_of(&p), 0o600);
        assert_eq!(names(t.path()), ["marker"]);
    }

    #[test]
    fn write_private_synced_replaces_a_symlink_never_its_target() {
        let t = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let victim = outside.path().join("victim");
        fs::write(&victim, "precious").expect("write");
        let p = t.path().join("x.reason");
        symlink(&victim, &p).expect("symlink");
        write_private_synced(&p, b"reason").expect("write");
        assert_eq!(read(&victim), "precious", "the link's target is untouched");
        assert!(
            !fs::symlink_metadata(&p)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
        assert_eq!(read(&p), "reason");
        assert_eq!(mode_of(&p), 0o600);
    }

    #[test]
    fn write_private_synced_over_a_symlinked_directory_replaces_the_link() {
        let t = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("x.reason");
        symlink(outside.path(), &p).expect("symlink");
        write_private_synced(&p, b"reason").expect("write");
        assert_eq!(read(&p), "reason");
        assert!(
            names(outside.path()).is_empty(),
            "nothing written through the link"
        );
    }

    #[test]
    fn write_private_synced_failing_leaves_nothing_behind() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("busy");
        fs::create_dir(&p).expect("a directory where the file should go");
        fs::write(p.join("inside"), "x").expect("write");
        write_private_synced(&p, b"data").expect_err("cannot rename over a directory");
        assert_eq!(names(t.path()), ["busy"], "no temp file left");
        assert!(p.is_dir());
        let e = write_private_synced(&t.path().join("no/such/dir/f"), b"x").expect_err("no dir");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn write_private_synced_skips_a_stale_temp_name() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("m");
        // Squat the next few temp names this process would pick.
        let next = {
            let (tmp, _) = create_temp_beside(&p).expect("temp");
            fs::remove_file(&tmp).expect("rm");
            tmp
        };
        let text = next
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let (stem, n) = text.rsplit_once('-').expect("counter");
        let n: u64 = n.parse().expect("number");
        for k in 1..4 {
            fs::write(t.path().join(format!("{stem}-{}", n + k)), "stale").expect("write");
        }
        write_private_synced(&p, b"ok").expect("write");
        assert_eq!(read(&p), "ok");
        assert!(names(t.path()).iter().all(|f| f == "m" || is_temp_name(f)));
    }

    // ---------------------------------------------------------------- move_file, sync_dir

    #[test]
    fn move_file_renames_within_a_file_system() {
        let t = tempfile::tempdir().expect("tempdir");
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        fs::write(&a, "batch").expect("write");
        move_file(&a, &b).expect("move");
        assert!(!a.exists());
        assert_eq!(read(&b), "batch");
    }

    #[test]
    fn move_file_replaces_a_symlink_at_the_destination_not_its_target() {
        let t = tempfile::tempdir().expect("tempdir");
        let victim = t.path().join("victim");
        fs::write(&victim, "precious").expect("write");
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        fs::write(&a, "batch").expect("write");
        symlink(&victim, &b).expect("symlink");
        move_file(&a, &b).expect("move");
        assert_eq!(read(&victim), "precious");
        assert!(
            !fs::symlink_metadata(&b)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
        assert_eq!(read(&b), "batch");
    }

    #[test]
    fn the_cross_device_copy_is_private_durable_and_removes_the_source() {
        let t = tempfile::tempdir().expect("tempdir");
        let q = t.path().join("quarantine");
        private_dir(&q).expect("dir");
        let a = t.path().join("a.sql");
        fs::write(&a, "batch").expect("write");
        fs::set_permissions(&a, fs::Permissions::from_mode(0o644)).expect("chmod");
        let b = q.join("a.sql");
        copy_then_remove(&a, &b).expect("copy");
        assert!(!a.exists(), "source removed");
        assert_eq!(read(&b), "batch");
        assert_eq!(mode_of(&b), 0o600);
        assert_eq!(names(&q), ["a.sql"], "no temp file left");
    }

    #[test]
    fn the_cross_device_copy_replaces_a_symlink_at_the_destination() {
        let t = tempfile::tempdir().expect("tempdir");
        let victim = t.path().join("victim");
        fs::write(&victim, "precious").expect("write");
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        fs::write(&a, "batch").expect("write");
        symlink(&victim, &b).expect("symlink");
        copy_then_remove(&a, &b).expect("copy");
        assert_eq!(read(&victim), "precious");
        assert_eq!(read(&b), "batch");
        assert!(
            !fs::symlink_metadata(&b)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn the_cross_device_copy_refuses_a_symlinked_source_and_leaves_everything() {
        let t = tempfile::tempdir().expect("tempdir");
        let secret = t.path().join("secret");
        fs::write(&secret, "secret").expect("write");
        let q = t.path().join("q");
        fs::create_dir(&q).expect("mkdir");
        let a = t.path().join("a");
        symlink(&secret, &a).expect("symlink");
        let e = copy_then_remove(&a, &q.join("a")).expect_err("refused");
        assert!(is_symlink_refusal(&e), "{e:?}");
        assert!(is_symlink(&a), "source left");
        assert!(names(&q).is_empty(), "no partial destination");
    }

    #[test]
    fn a_failed_cross_device_copy_leaves_the_source_and_no_partial_destination() {
        let t = tempfile::tempdir().expect("tempdir");
        let a = t.path().join("a");
        fs::write(&a, "batch").expect("write");
        let b = t.path().join("b");
        fs::create_dir(&b).expect("a directory at the destination");
        fs::write(b.join("inside"), "x").expect("write");
        copy_then_remove(&a, &b).expect_err("cannot replace a directory");
        assert_eq!(read(&a), "batch");
        assert_eq!(names(t.path()), ["a", "b"], "no temp file left");
        assert_eq!(names(&b), ["inside"]);
    }

    #[test]
    fn sync_dir_syncs_a_directory_and_refuses_a_file() {
        let t = tempfile::tempdir().expect("tempdir");
        sync_dir(t.path()).expect("sync");
        let f = t.path().join("f");
        fs::write(&f, "x").expect("write");
        sync_dir(&f).expect_err("not a directory");
    }

    /// A file someone else controls: a FIFO is refused without blocking, a symlink is
    /// not followed, a file over the cap is refused, and one that grows past it while it
    /// is copied fails the copy and leaves nothing at the destination.
    #[test]
    fn files_of_others_are_opened_regular_capped_and_never_waited_on() {
        let t = tempfile::tempdir().expect("tempdir");
        let fifo = t.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let e = open_regular_capped(&fifo, 100).expect_err("a FIFO");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = t.path().join("big");
        fs::write(&big, vec![0u8; 200]).expect("write");
        let e = open_regular_capped(&big, 100).expect_err("too large");
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&big, &link).expect("symlink");
        open_regular_capped(&link, 1000).expect_err("a symlink");
        let to = t.path().join("copy");
        assert_eq!(copy_new_capped(&big, &to, 1000).expect("copy"), 200);
        copy_new_capped(&big, &to, 1000).expect_err("never over an existing file");
        // Grown after the size check: the copy reads at most the cap and fails.
        let mut src = open_regular_capped(&big, 1000).expect("open");
        fs::write(&big, vec![1u8; 2000]).expect("grow");
        let (_tmp, mut dst) = create_temp_beside(&t.path().join("grown")).expect("temp");
        let e = copy_capped(&mut src, &mut dst, 1000, &big).expect_err("grown");
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
    }
}
