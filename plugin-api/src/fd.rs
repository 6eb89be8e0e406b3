//! Reading a console file descriptor with a timeout, for connection drivers.
//!
//! Serial lines, ptys and sockets all come down to "wait until the descriptor is readable or
//! the time is up, then read"; this is that, with the end of the stream told apart from
//! silence (Linux reports a pty whose other side closed as `EIO`, not as end of file).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// What a timed read found.
#[derive(Debug, PartialEq, Eq)]
pub enum FdRead {
    /// Bytes arrived.
    Data(Vec<u8>),
    /// Nothing arrived in time.
    TimedOut,
    /// The other side is gone.
    Closed,
}

/// Waits up to `timeout` for `file` to become readable and reads at most `max` bytes.
pub fn read_with_timeout(file: &mut File, max: usize, timeout: Duration) -> io::Result<FdRead> {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let wait_ms = i32::try_from(remaining.as_millis()).unwrap_or(i32::MAX);
        let mut fds = [libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: `fds` is a valid array of one pollfd for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, wait_ms) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if ready == 0 {
            return Ok(FdRead::TimedOut);
        }
        let mut buf = vec![0u8; max.clamp(1, 1 << 16)];
        return match file.read(&mut buf) {
            Ok(0) => Ok(FdRead::Closed),
            Ok(n) => {
                buf.truncate(n);
                Ok(FdRead::Data(buf))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(FdRead::Closed),
            Err(e) => Err(e),
        };
    }
}
