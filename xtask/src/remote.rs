//! Remote devices (cargo feature `remote`): `cargo xtask serve-device` serves this machine's
//! device over Burn's remote server, and `cargo xtask train --replica-device ws://host:port`
//! trains one data-parallel replica on it ([`replica_devices`]).
//!
//! The transport is Burn's WebSocket one. Every session must present the server's token
//! (`ANT_REMOTE_TOKEN`, or a token file): the server refuses anyone else. WebSocket traffic is
//! not encrypted, the token included: serve on a network you trust (a cluster's private
//! network, an SSH tunnel), never on the open internet.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;

use crate::device::DeviceChoice;

/// The environment variable holding the shared token, on the server and on the trainer.
pub const TOKEN_ENV: &str = "ANT_REMOTE_TOKEN";

/// Flags of `cargo xtask serve-device`.
#[derive(Args, Debug)]
pub struct ServeDeviceArgs {
    /// The device to serve: `cpu` (Burn's flex backend), `wgpu` or `cuda` (build with those
    /// features too).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Address and port to listen on (port 0: one the system picks, printed on stdout).
    /// Anything other than a loopback address exposes the device to that network, unencrypted.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// The token clients must present: read from this file, or written there (a fresh random
    /// one, readable by its owner only) when the file does not exist. Without it, the token is
    /// `ANT_REMOTE_TOKEN`, or a fresh random one printed on stderr.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Serve anyone who connects, without a token (only for a network nobody else can reach).
    #[arg(long)]
    pub no_credential: bool,
}

/// A fresh random token: 32 bytes from `rand`'s thread generator (a CSPRNG seeded by the
/// operating system), as hex.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
fn fresh_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A token read from `path` (surrounding whitespace removed), which must not be empty.
fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    let token = text.trim().to_string();
    anyhow::ensure!(
        !token.is_empty(),
        "the token file {} is empty",
        path.display()
    );
    Ok(token)
}

/// Writes a fresh token to `path`, which must not exist, readable by its owner only.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
fn write_token(path: &Path) -> anyhow::Result<String> {
    let token = fresh_token();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the token file {}", path.display()))?;
    writeln!(file, "{token}").with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// The server's token: from `--token-file` (made when missing), else `ANT_REMOTE_TOKEN`,
/// else a fresh one printed on stderr.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
fn server_token(token_file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(path) = token_file {
        if path.exists() {
            return read_token(path);
        }
        let token = write_token(path)?;
        eprintln!(
            "wrote a new token to {} (copy it to the trainer: --remote-token-file, or {TOKEN_ENV})",
            path.display()
        );
        return Ok(token);
    }
    if let Ok(token) = std::env::var(TOKEN_ENV) {
        anyhow::ensure!(!token.trim().is_empty(), "{TOKEN_ENV} is set but empty");
        return Ok(token.trim().to_string());
    }
    let token = fresh_token();
    eprintln!(
        "token: {token}\n(give it to the trainer: {TOKEN_ENV}={token} cargo xtask train ...)"
    );
    Ok(token)
}

/// The error of a build without the `remote` feature.
#[cfg(not(feature = "remote"))]
fn not_built(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} needs remote devices: build with the `remote` feature \
         (cargo run --release -p xtask --features remote -- ...)"
    )
}

/// Runs `cargo xtask serve-device`: blocks until Ctrl+C or SIGTERM.
#[cfg(not(feature = "remote"))]
pub fn serve(_: ServeDeviceArgs) -> anyhow::Result<()> {
    Err(not_built("serve-device"))
}

/// Runs `cargo xtask serve-device`: blocks until Ctrl+C or SIGTERM.
#[cfg(feature = "remote")]
pub fn serve(args: ServeDeviceArgs) -> anyhow::Result<()> {
    use burn::server::{AllowAll, RemoteServer, TokenAuthorizer, WebSocketTransport};
    use std::net::TcpListener;

    let device = args.device.device()?;
    let server = RemoteServer::new([device.clone()]);
    let server = if args.no_credential {
        eprintln!(
            "warning: --no-credential: serving anyone who can reach {}",
            args.listen
        );
        server.with_authorizer(AllowAll)
    } else {
        let token = server_token(args.token_file.as_deref())?;
        server.with_authorizer(TokenAuthorizer::new(token)?)
    };
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "warning: serving on {}: WebSocket traffic (tensors and the token) is not encrypted",
            args.listen
        );
    }
    let listener =
        TcpListener::bind(args.listen).with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    // One line on stdout, flushed, that scripts (and the tests) wait for.
    println!("listening ws://{address} device {:?}", args.device);
    std::io::stdout().flush()?;
    server
        .serve(WebSocketTransport::from_listener(listener))
        .with_context(|| format!("serving {device:?} on ws://{address}"))?;
    Ok(())
}

/// The token the trainer presents: `--remote-token-file`, else `ANT_REMOTE_TOKEN`, else none
/// (which a server with a token refuses).
pub fn client_token(token_file: Option<&Path>) -> anyhow::Result<Option<String>> {
    if let Some(path) = token_file {
        return read_token(path).map(Some);
    }
    Ok(std::env::var(TOKEN_ENV)
        .ok()
        .map(|token| token.trim().to_string())
        .filter(|token| !token.is_empty()))
}

/// Connects one remote device per URL (`ws://host:port`, the server's device 0), presenting
/// `token`. Fails on the first URL that cannot be reached or refuses the token.
#[cfg(not(feature = "remote"))]
pub fn replica_devices(_: &[String], _: Option<&str>) -> anyhow::Result<Vec<Device>> {
    Err(not_built("--replica-device"))
}

/// Connects one remote device per URL (`ws://host:port`, the server's device 0), presenting
/// `token`. Fails on the first URL that cannot be reached or refuses the token.
#[cfg(feature = "remote")]
pub fn replica_devices(urls: &[String], token: Option<&str>) -> anyhow::Result<Vec<Device>> {
    use burn::remote::RemoteHost;

    urls.iter()
        .map(|url| {
            anyhow::ensure!(
                url.starts_with("ws://"),
                "--replica-device {url:?}: expected ws://host:port (the address \
                 `cargo xtask serve-device` printed)"
            );
            let mut host = RemoteHost::websocket(url);
            if let Some(token) = token {
                host = host.with_credential(token);
            }
            Device::remote_options(&host).init().map_err(|error| {
                let hint = if token.is_none() {
                    format!(" (no token given: set {TOKEN_ENV} or --remote-token-file)")
                } else {
                    String::new()
                };
                anyhow::anyhow!("connecting the replica device {url}: {error}{hint}")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_write_a_fresh_private_token_once_and_read_it_back() {
        let dir = std::env::temp_dir().join(format!("ant-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        let token = server_token(Some(&path)).unwrap();
        assert_eq!(token.len(), 64, "32 random bytes as hex");
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
        }
        assert_eq!(
            server_token(Some(&path)).unwrap(),
            token,
            "read, not replaced"
        );
        assert_eq!(
            client_token(Some(&path)).unwrap().as_deref(),
            Some(token.as_str())
        );
        assert_ne!(fresh_token(), fresh_token());
        std::fs::write(&path, "  \n").unwrap();
        let error = client_token(Some(&path)).unwrap_err().to_string();
        assert!(
            error.contains("empty") && error.contains("token"),
            "{error}"
        );
        let missing = dir.join("missing");
        let error = format!("{:#}", client_token(Some(&missing)).unwrap_err());
        assert!(error.contains(&missing.display().to_string()), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
