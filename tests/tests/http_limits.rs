//! The HTTP port under clients that never finish (issue 14, item 4): connections that send a
//! body a byte at a time or a header that never ends, hundreds of them, and one address that
//! opens more than its share; everyone else is still answered at once.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::{Duration, Instant};

use basalt_e2e::cluster::Cluster;
use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};

/// A TCP connection to `port` on 127.0.0.1 from the loopback address `from` (all of 127/8
/// is this machine's), so tests can play several client addresses.
fn connect_from(from: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(from, 0)),
    )?;
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
    )?;
    // SAFETY: the descriptor is a connected TCP socket this function owns.
    Ok(unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) })
}

/// Enough descriptors for this test's hundreds of connections.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn port(cluster: &Cluster) -> u16 {
    cluster
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap()
}

/// The time one ordinary request takes, failing if it is not answered 200.
fn answered_in(url: &str) -> Duration {
    let started = Instant::now();
    let response = ureq::get(url)
        .timeout(Duration::from_secs(30))
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(response.status(), 200, "{url}");
    let _ = response.into_string();
    started.elapsed()
}

#[test]
fn five_hundred_slow_clients_leave_everyone_else_answered_within_a_second() {
    raise_open_file_limit();
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    let port = port(&cluster);
    // 400 connections from eight addresses (50 each, under the per-client bound) whose
    // bodies come a byte at a time, and 100 from two more whose headers never end.
    let mut slow = Vec::new();
    for i in 0..10u8 {
        for _ in 0..50 {
            let mut stream = connect_from(Ipv4Addr::new(127, 0, 0, 10 + i), port).unwrap();
            let request = if i < 8 {
                "POST /api/v1/jobs/validate HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nj"
            } else {
                "GET /api/v1/workers HTTP/1.1\r\nHost: x\r\nX-Slow: "
            };
            stream.write_all(request.as_bytes()).unwrap();
            slow.push(stream);
        }
    }
    // More than their handler slots (128): each would have held one before.
    std::thread::sleep(Duration::from_millis(500));
    for stream in &mut slow {
        let _ = stream.write_all(b"x");
    }
    let url = cluster.url();
    for path in ["/api/v1/workers", "/metrics", "/", "/api/v1/jobs"] {
        let took = answered_in(&format!("{url}{path}"));
        assert!(took < Duration::from_secs(1), "{path} took {took:?}");
    }
    let rpc = Instant::now();
    let reply = ureq::post(&format!("{url}/RPC2"))
        .send_string(
            "<?xml version='1.0'?><methodCall><methodName>system.version</methodName>\
             <params/></methodCall>",
        )
        .unwrap()
        .into_string()
        .unwrap();
    assert!(reply.contains("methodResponse"), "{reply}");
    assert!(
        rpc.elapsed() < Duration::from_secs(1),
        "{:?}",
        rpc.elapsed()
    );
    drop(slow);
}

#[test]
fn one_address_is_served_at_most_its_share_at_once_and_a_stalled_header_is_cut_off() {
    raise_open_file_limit();
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    let port = port(&cluster);
    let greedy = Ipv4Addr::new(127, 0, 0, 40);
    // 64 kept-alive connections, each answered once: each holds one of its address's turns
    // (until the header deadline, 10 s, closes it idle).
    let held: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut stream = connect_from(greedy, port).unwrap();
            stream
                .write_all(b"GET /api/v1/version HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut first = [0u8; 16];
            assert!(stream.read(&mut first).unwrap() > 0, "no answer");
            stream
        })
        .collect();
    // The 65th connection of that address waits for its turn while the 64 stay open...
    let mut extra = connect_from(greedy, port).unwrap();
    extra
        .write_all(b"GET /api/v1/workers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        extra.read(&mut buf).is_err(),
        "a 65th connection was served while 64 were busy"
    );
    // ...another address is served meanwhile...
    assert!(answered_in(&format!("{}/api/v1/workers", cluster.url())) < Duration::from_secs(1));
    // ...and it is served in turn once they close.
    drop(held);
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = extra.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A header that stops half-way is closed after the header deadline (10 s).
    let mut stalled = connect_from(Ipv4Addr::new(127, 0, 0, 41), port).unwrap();
    stalled
        .write_all(b"GET /api/v1/workers HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(19),
        "closed after {waited:?}: {}",
        String::from_utf8_lossy(&answer)
    );
}
