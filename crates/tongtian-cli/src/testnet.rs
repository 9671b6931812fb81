//! `tongtian testnet up`: run every node home of a directory as a child
//! process with one merged, prefixed log.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Node homes `dir/node-<i>`, in index order.
pub fn node_homes(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut homes: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let i = name.strip_prefix("node-")?.parse().ok()?;
            e.path().join("config.toml").exists().then(|| (i, e.path()))
        })
        .collect();
    homes.sort();
    if homes.is_empty() {
        bail!(
            "no node homes (node-N/config.toml) in {}; run `tongtian testnet init` first",
            dir.display()
        );
    }
    Ok(homes.into_iter().map(|(_, p)| p).collect())
}

fn pipe_lines(prefix: String, stream: impl std::io::Read + Send + 'static, to_stderr: bool) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if to_stderr {
                let _ = writeln!(std::io::stderr().lock(), "{prefix} {line}");
            } else {
                let _ = writeln!(std::io::stdout().lock(), "{prefix} {line}");
            }
        }
    });
}

fn terminate(children: &mut [(String, Child)]) {
    for (_, c) in children.iter() {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for (name, c) in children.iter_mut() {
        loop {
            match c.try_wait() {
                Ok(Some(status)) => {
                    eprintln!("[{name}] exited: {status}");
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    eprintln!("[{name}] killed after the shutdown grace period");
                    break;
                }
            }
        }
    }
}

/// Start all nodes; stop them all on SIGINT/SIGTERM.
pub async fn up(dir: &Path) -> Result<()> {
    let exe = std::env::current_exe().context("locating the tongtian binary")?;
    let mut children = Vec::new();
    for home in node_homes(dir)? {
        let name = home
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut child = Command::new(&exe)
            .args(["node", "start", "--home"])
            .arg(&home)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let prefix = format!("[{name}]");
        if let Some(out) = child.stdout.take() {
            pipe_lines(prefix.clone(), out, false);
        }
        if let Some(err) = child.stderr.take() {
            pipe_lines(prefix, err, true);
        }
        children.push((name, child));
    }
    eprintln!(
        "started {} nodes from {}; Ctrl-C stops them all",
        children.len(),
        dir.display()
    );
    crate::commands::wait_for_signal().await;
    eprintln!("stopping {} nodes", children.len());
    tokio::task::spawn_blocking(move || terminate(&mut children)).await?;
    Ok(())
}
