//! Free TCP ports on 127.0.0.1, chosen at start so that stacks never collide.
//!
//! A port is found by binding port 0 and releasing it. Ports handed out by this process are remembered,
//! so two stacks started side by side in one process (parallel tests) never get the same one; between
//! processes, the kernel's choice of ephemeral ports makes a collision very unlikely.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Mutex, OnceLock};

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(Default::default)
}

/// A free port on 127.0.0.1 that this process has not handed out before.
pub fn free_port() -> std::io::Result<u16> {
    let mut seen = handed_out().lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..64 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if seen.insert(port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no fresh free port found",
    ))
}

/// `127.0.0.1:port`
pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        let unique: HashSet<_> = ports.iter().collect();
        assert_eq!(unique.len(), ports.len());
        for port in ports {
            TcpListener::bind(localhost(port)).expect("a free port can be bound");
        }
    }
}
