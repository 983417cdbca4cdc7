//! `mobula serve status`: what Serve runs, asked of its proxy's `/-/status`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

use mobula::serve::ServeStatus;

use super::TIMEOUT;
use super::args::Options;

pub fn serve(o: &Options) -> Result<(), String> {
    match o.words.first().map(String::as_str) {
        Some("status") => status(o),
        Some(other) => Err(format!(
            "unknown serve command {other:?}; try `mobula serve status`"
        )),
        None => Err("serve what? `mobula serve status [--address HOST:PORT]`".into()),
    }
}

fn status(o: &Options) -> Result<(), String> {
    let address = o.address.clone().unwrap_or_else(|| "127.0.0.1:8000".into());
    let body = get(&address, "/-/status")?;
    let status: ServeStatus = serde_json::from_slice(&body).map_err(|e| {
        format!("{address} answered /-/status with something that is not Serve's status: {e}")
    })?;
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", status.render());
    }
    Ok(())
}

/// One GET; the body of a 200 answer.
fn get(address: &str, path: &str) -> Result<Vec<u8>, String> {
    let unreachable = |e: &dyn std::fmt::Display| {
        format!(
            "cannot reach a Serve proxy at {address}: {e} (is an application running? give its address with --address)"
        )
    };
    let socket = address
        .to_socket_addrs()
        .map_err(|e| unreachable(&e))?
        .next()
        .ok_or_else(|| unreachable(&"no such address"))?;
    let mut stream = TcpStream::connect_timeout(&socket, TIMEOUT).map_err(|e| unreachable(&e))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| unreachable(&e))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| unreachable(&e))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| unreachable(&e))?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{address} did not answer HTTP"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{address} answered {}",
            head.lines().next().unwrap_or("")
        ));
    }
    let body = &raw[end + 4..];
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return dechunk(body).ok_or_else(|| format!("{address} sent a broken chunked body"));
    }
    Ok(body.to_vec())
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}
