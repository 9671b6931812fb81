//! Helpers for tests that run the real `tongtian` binary.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tongtian_crypto::keyfile::KeyFile;
use tongtian_crypto::Keypair;
use tongtian_types::{Action, Address, SignedTransaction, Transaction};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tongtian")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `tongtian dev` process on a loopback port; killed when dropped.
pub struct DevNode {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    pub port: u16,
    pub suite: &'static str,
}

impl DevNode {
    /// Start a node in `data_dir` and wait until its API answers.
    pub fn start(data_dir: &Path, suite: &'static str) -> DevNode {
        let mut node = DevNode {
            child: None,
            data_dir: data_dir.to_path_buf(),
            port: free_port(),
            suite,
        };
        node.launch();
        node
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .unwrap();
        let child = Command::new(bin())
            .args(["dev", "--data-dir"])
            .arg(&self.data_dir)
            .args([
                "--api",
                &format!("127.0.0.1:{}", self.port),
                "--suite",
                self.suite,
                "--log",
                "info",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tongtian dev");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/v1/status", self.url());
        loop {
            if let Ok(r) = reqwest::blocking::get(&url) {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "node did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Process id of the running node.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("node is running").id()
    }

    /// SIGKILL the process (no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY-free: use the kill command to send SIGTERM.
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "node did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Start again on the same data directory and port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Load dev key `n`.
    pub fn dev_key(&self, n: usize) -> Keypair {
        KeyFile::read(&self.data_dir.join("dev-keys").join(format!("dev-{n}.key")))
            .unwrap()
            .open(None)
            .unwrap()
    }

    /// Run the CLI against this node.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(["--node", &self.url()])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The address of a key.
pub fn address(k: &Keypair) -> Address {
    Address::from_public_key(k.suite(), k.public_key())
}

/// A signed transfer.
pub fn transfer(
    chain_id: u64,
    key: &Keypair,
    nonce: u64,
    to: Address,
    amount: u128,
) -> SignedTransaction {
    Transaction {
        chain_id,
        nonce,
        gas_limit: 100_000,
        gas_price: 1,
        action: Action::Transfer {
            to,
            amount,
            memo: vec![],
        },
    }
    .sign(key)
}

/// The Python of a virtual environment at `dir/.venv` with `dir`'s
/// `requirements.txt` installed, made on first use (versions pinned there).
pub fn python_venv(dir: &Path) -> PathBuf {
    let venv = dir.join(".venv");
    let python = venv.join("bin/python");
    if python.exists() {
        return python;
    }
    let st = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("Python 3 with venv is needed for this test");
    assert!(st.success(), "python3 -m venv failed");
    let st = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("-r")
        .arg(dir.join("requirements.txt"))
        .status()
        .unwrap();
    if !st.success() {
        // Leave no half-built environment for the next run to trust.
        let _ = std::fs::remove_dir_all(&venv);
        panic!("pip install -r {}/requirements.txt failed", dir.display());
    }
    python
}

/// A `party serve` process, killed on drop.
pub struct AgentProc {
    child: Option<Child>,
    /// Its home.
    pub home: PathBuf,
    port: u16,
    key: PathBuf,
    node: String,
}

impl AgentProc {
    pub fn start(node: &DevNode, home: &Path, key: &Path, port: u16) -> AgentProc {
        let mut a = AgentProc {
            child: None,
            home: home.to_path_buf(),
            port,
            key: key.to_path_buf(),
            node: node.url(),
        };
        a.launch();
        a
    }

    pub fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.with_extension("log"))
            .unwrap();
        let child = Command::new(bin())
            .args([
                "--node", &self.node, "--log", "info", "party", "serve", "--home",
            ])
            .arg(&self.home)
            .arg("--key")
            .arg(&self.key)
            .args([
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--session-timeout",
                "10",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "agent did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A CLI run's stdout as JSON, after asserting it succeeded (both
/// streams in the message when it did not).
pub fn ok_json(out: Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stdout {}\nstderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The first file under `dir` (recursively) whose bytes contain `needle`.
pub fn contains(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if let Some(f) = contains(&p, needle) {
                return Some(f);
            }
        } else if let Ok(b) = std::fs::read(&p) {
            if b.windows(needle.len()).any(|w| w == needle) {
                return Some(p);
            }
        }
    }
    None
}
