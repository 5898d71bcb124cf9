//! Writing files so that a crash never leaves one half-written.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Suffix of the temporary files [`write_atomic`] writes beside their target.
pub(crate) const TEMPORARY_SUFFIX: &str = ".tmp";

/// Writes `bytes` to a temporary file beside `path` (a name of its own per process and
/// call), syncs it, renames it over `path` and syncs the folder, so that `path` holds either
/// its old or its new content, also after a crash. A failed write removes the temporary file;
/// one left by a killed process is removed by [`remove_leftovers`].
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temporary = path.as_os_str().to_owned();
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    temporary.push(format!(".{}-{n}{TEMPORARY_SUFFIX}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(error) = written.and_then(|_| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    // The rename lives in the folder's entries: sync them too (where a folder can be opened).
    if let Ok(folder) = std::fs::File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

/// The whole of a file of at most `limit` bytes, or `None` when it is larger: judged from its
/// size where the file system gives one, so a huge file is not read at all.
pub(crate) fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    if file.metadata().is_ok_and(|m| m.len() > limit) {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// Removes the temporary files that [`write_atomic`] calls killed mid-write left in `dir`
/// (the files they were replacing are intact); returns how many.
pub(crate) fn remove_leftovers(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(is_temporary)
        })
        .filter(|path| std::fs::remove_file(path).is_ok())
        .count()
}

/// Whether `name` is one of [`write_atomic`]'s temporary names: `<file>.<pid>-<n>.tmp`.
fn is_temporary(name: &str) -> bool {
    let tag = name
        .strip_suffix(TEMPORARY_SUFFIX)
        .and_then(|stem| stem.rsplit_once('.'))
        .and_then(|(_, tag)| tag.split_once('-'));
    tag.is_some_and(|(pid, n)| {
        !pid.is_empty()
            && !n.is_empty()
            && (pid.bytes().chain(n.bytes())).all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_of_killed_writes_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let keep = [
            "checkpoint.safetensors",
            "notes.tmp",
            "a.b-c.tmp",
            "x.12-.tmp",
        ];
        let leftovers = ["checkpoint.safetensors.4242-3.tmp", "losses.csv.7-0.tmp"];
        for name in keep.iter().chain(&leftovers) {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(remove_leftovers(dir.path()), 2);
        for name in keep {
            assert!(dir.path().join(name).exists(), "{name} was removed");
        }
        write_atomic(&dir.path().join("new.txt"), b"whole").unwrap();
        assert_eq!(std::fs::read(dir.path().join("new.txt")).unwrap(), b"whole");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            keep.len() + 1
        );
    }
}
