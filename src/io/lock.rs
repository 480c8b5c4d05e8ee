//! Advisory file locks (`flock(2)`) that keep two aifr-eval
//! processes from writing the same thing at once: a run directory (the second run is refused)
//! or a cached store (the second process waits and then reuses the first one's result).
//!
//! The lock belongs to the open file, so the kernel releases it when the holder exits or is
//! killed: a lock file left on disk by a killed holder never blocks anyone. A holder that ends
//! normally deletes the file while still holding the lock, and a process that locked a file
//! which was deleted meanwhile starts over, so deleting never lets two holders in. The holder
//! writes its pid into the file so that the other process can say whom it is waiting for.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// What to do when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Fail at once with [`Error::Busy`].
    Refuse,
    /// Say on stderr who holds it, then wait until it is released.
    Block,
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Takes the exclusive lock on `path` (created when missing). `what` says what the lock
    /// protects, for messages: "the run directory reports/lfw".
    pub fn acquire(path: &Path, what: &str, wait: Wait) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
        }
        let mut said = false;
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| Error::write(path, e))?;
            match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let holder = holder(&mut file);
                    match wait {
                        Wait::Refuse => {
                            return Err(Error::Busy(format!(
                                "{what} is being written by another aifr-eval process ({holder}); \
                                 wait for it to finish or choose another --out (lock: {})",
                                path.display()
                            )))
                        }
                        Wait::Block => {
                            if !said {
                                eprintln!("aifr-eval: waiting for another aifr-eval process ({holder}) writing {what}");
                                said = true;
                            }
                            flock(&file, libc::LOCK_EX).map_err(|e| Error::write(path, e))?;
                        }
                    }
                }
                Err(e) => return Err(Error::write(path, e)),
            }
            // The previous holder may have deleted the file between our open and our lock: then
            // we hold a lock nobody else sees, and must start over on the file now at `path`.
            if !same_file(&file, path) {
                continue;
            }
            // Best effort: the pid only improves the other process's message.
            let _ = file.set_len(0).and_then(|_| writeln!(file, "{}", std::process::id()));
            return Ok(FileLock { file, path: path.to_path_buf() });
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Deleted while still held, so nobody can lock this file and believe it current.
        let _ = std::fs::remove_file(&self.path);
        let _ = flock(&self.file, libc::LOCK_UN);
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// `flock(2)` on `file`, retried when a signal interrupts the wait.
fn flock(file: &File, op: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: a plain system call on a file descriptor this `File` owns.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|_| file.take(32).read_to_string(&mut text));
    match text.trim().parse::<u32>() {
        Ok(pid) => format!("pid {pid}"),
        Err(_) => "pid unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_named_then_admitted_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let first = FileLock::acquire(&p, "the run directory x", Wait::Refuse).unwrap();
        // flock is per open file, so a second open in the same process conflicts like another process.
        let e = FileLock::acquire(&p, "the run directory x", Wait::Refuse).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("the run directory x") && msg.contains(&format!("pid {}", std::process::id())), "{msg}");
        assert_eq!(e.exit_code(), crate::error::exit::OUTPUT);
        drop(first);
        assert!(!p.exists(), "a released lock leaves no file");
        let again = FileLock::acquire(&p, "the run directory x", Wait::Refuse).unwrap();
        assert_eq!(again.path(), p);
    }

    #[test]
    fn a_blocking_waiter_gets_the_lock_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.lock");
        let first = FileLock::acquire(&p, "a cached store", Wait::Block).unwrap();
        let p2 = p.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let l = FileLock::acquire(&p2, "a cached store", Wait::Block).unwrap();
            tx.send(()).unwrap();
            drop(l);
        });
        // The waiter cannot have the lock while we hold it.
        assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err());
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
        t.join().unwrap();
    }
}
