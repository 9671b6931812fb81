//! `tongtian testnet up`: run every node home of a directory as a child
//! process with one merged, prefixed log.

use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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

/// Copy a child's output lines, prefixed, to our stdout or stderr, and
/// keep the last few in `tail` (what a node said before it died).
fn pipe_lines(
    prefix: String,
    stream: impl std::io::Read + Send + 'static,
    to_stderr: bool,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if to_stderr {
                let _ = writeln!(std::io::stderr().lock(), "{prefix} {line}");
            } else {
                let _ = writeln!(std::io::stdout().lock(), "{prefix} {line}");
            }
            let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line);
        }
    });
}

/// How many of a node's last output lines a failure report quotes.
const TAIL_LINES: usize = 6;

/// How long a node may take from spawn to answering on its API.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One node of the testnet, run as a child process.
struct NodeChild {
    name: String,
    api: String,
    child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// Set once its exit has been reported.
    exited: bool,
}

impl NodeChild {
    /// Why it stopped, with the last thing it said.
    fn last_words(&self) -> String {
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        t.iter()
            .rev()
            .find(|l| l.contains("error") || l.contains("ERROR"))
            .or(t.back())
            .cloned()
            .unwrap_or_else(|| "(it printed nothing)".into())
    }
}

fn terminate(children: &mut [NodeChild]) {
    for c in children.iter().filter(|c| !c.exited) {
        let _ = Command::new("kill")
            .args(["-TERM", &c.child.id().to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for c in children.iter_mut().filter(|c| !c.exited) {
        loop {
            match c.child.try_wait() {
                Ok(Some(status)) => {
                    eprintln!("[{}] exited: {status}", c.name);
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = c.child.kill();
                    let _ = c.child.wait();
                    eprintln!("[{}] killed after the shutdown grace period", c.name);
                    break;
                }
            }
        }
    }
}

/// Wait until every node answers on its API or has exited; report each.
/// Returns how many failed to start.
async fn await_started(children: &mut [NodeChild]) -> usize {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut up = vec![false; children.len()];
    let mut failed = 0;
    while up.iter().zip(children.iter()).any(|(u, c)| !u && !c.exited) {
        for (i, c) in children.iter_mut().enumerate() {
            if up[i] || c.exited {
                continue;
            }
            if let Ok(Some(status)) = c.child.try_wait() {
                c.exited = true;
                failed += 1;
                eprintln!(
                    "[{}] FAILED to start ({status}): {}",
                    c.name,
                    c.last_words()
                );
                continue;
            }
            let ok = tongtian_client::Client::with_timeout(&c.api, Duration::from_secs(2))
                .status()
                .await
                .is_ok();
            if ok {
                up[i] = true;
                eprintln!("[{}] started: api {}", c.name, c.api);
            } else if Instant::now() > deadline {
                c.exited = true;
                failed += 1;
                let _ = c.child.kill();
                let _ = c.child.wait();
                eprintln!(
                    "[{}] FAILED to start: no answer on {} within {}s; last said: {}",
                    c.name,
                    c.api,
                    START_TIMEOUT.as_secs(),
                    c.last_words()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    failed
}

/// Start all nodes, each with the log filter `log`; report each node's
/// start or failure. Fails (after stopping the others) if a node cannot
/// start. Then run until SIGINT/SIGTERM, reporting any node that dies;
/// fails when all of them have.
pub async fn up(dir: &Path, log: &str) -> Result<()> {
    let exe = std::env::current_exe().context("locating the tongtian binary")?;
    let mut children = Vec::new();
    for home in node_homes(dir)? {
        let name = home
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let config_path = home.join("config.toml");
        let config: tongtian_node::config::NodeConfig = toml::from_str(
            &std::fs::read_to_string(&config_path)
                .with_context(|| format!("reading {}", config_path.display()))?,
        )
        .with_context(|| format!("{} is not a node config", config_path.display()))?;
        let mut child = Command::new(&exe)
            .args(["--log", log, "node", "start", "--home"])
            .arg(&home)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let prefix = format!("[{name}]");
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            pipe_lines(prefix.clone(), out, false, tail.clone());
        }
        if let Some(err) = child.stderr.take() {
            pipe_lines(prefix, err, true, tail.clone());
        }
        children.push(NodeChild {
            name,
            api: format!("http://{}", config.api),
            child,
            tail,
            exited: false,
        });
    }
    let failed = await_started(&mut children).await;
    if failed > 0 {
        let n = children.len();
        tokio::task::spawn_blocking(move || terminate(&mut children)).await?;
        bail!("{failed} of {n} nodes failed to start (see above); stopped the others");
    }
    eprintln!(
        "all {} nodes started from {}; Ctrl-C stops them all",
        children.len(),
        dir.display()
    );
    let signal = crate::util::wait_for_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        for c in children.iter_mut().filter(|c| !c.exited) {
            if let Ok(Some(status)) = c.child.try_wait() {
                c.exited = true;
                eprintln!("[{}] DIED ({status}): {}", c.name, c.last_words());
            }
        }
        let alive = children.iter().filter(|c| !c.exited).count();
        if alive == 0 {
            bail!("every node has died (see above)");
        }
    }
    eprintln!("stopping {} nodes", children.len());
    tokio::task::spawn_blocking(move || terminate(&mut children)).await?;
    Ok(())
}
