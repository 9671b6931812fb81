//! Rust (or any language) compiled to WebAssembly, run on
//! [wasmi](https://github.com/wasmi-labs/wasmi).
//!
//! Determinism and limits:
//! * float instructions are refused when a module is compiled, as are
//!   start functions and imports other than the host functions below;
//! * every instruction costs fuel and fuel is gas (one for one); host
//!   functions charge gas for what they do (storage, events, hashing);
//! * memory is capped at [`MAX_MEMORY_BYTES`] and call nesting at wasmi's
//!   recursion limit, so hostile modules trap instead of exhausting the
//!   node.
//!
//! Contracts export `call` (and optionally `deploy`) and talk to the chain
//! through the `env` imports that `tongtian-contract-sdk` wraps. Compiled
//! modules are cached by code hash, and instances are reused between calls
//! with their memory and globals restored (see [`pool`]).

pub mod json;
pub mod pool;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tongtian_contract_sdk::Value;
use tongtian_execution::vm::{CallResult, CodeInfo, Host, Message, Vm, VmFailure};
use tongtian_execution::ExecutionError;
use tongtian_types::{Address, Event, VmKind, H256};
use wasmi::{
    Caller, Config, Engine, Extern, Global, Instance, Linker, Module, Store, StoreLimits,
    StoreLimitsBuilder, Val,
};

/// Largest linear memory a contract may have: 16 MiB.
pub const MAX_MEMORY_BYTES: usize = 16 << 20;
/// Gas per byte of code stored at deployment.
pub const CODE_DEPOSIT_PER_BYTE: u64 = 20;

/// Gas prices of host functions.
mod cost {
    pub const BASE: u64 = 20;
    pub const PER_BYTE: u64 = 1;
    pub const STORAGE_READ: u64 = 200;
    pub const STORAGE_WRITE: u64 = 2_000;
    pub const STORAGE_WRITE_PER_BYTE: u64 = 10;
    pub const EVENT: u64 = 375;
    pub const EVENT_PER_BYTE: u64 = 8;
    pub const HASH: u64 = 60;
    pub const VERIFY: u64 = 3_000;
    pub const BALANCE: u64 = 200;
    pub const TRANSFER: u64 = 2_000;
    pub const CALL: u64 = 700;
}

/// Why a contract stopped, raised from host functions.
#[derive(Debug)]
enum Stop {
    Revert(Vec<u8>),
    OutOfGas,
    Fatal,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Revert(_) => f.write_str("reverted"),
            Stop::OutOfGas => f.write_str("out of gas"),
            Stop::Fatal => f.write_str("state error"),
        }
    }
}

impl wasmi::errors::HostError for Stop {}

/// What host functions see. The host is held by address, not by
/// reference, so that `Env` has no lifetime and one [`Linker`] serves every
/// call (building a linker per call cost more than running a token
/// transfer); see [`host_of`] for the rule that keeps this sound.
struct Env {
    /// Exposed address of the `Host` of the running call.
    host: usize,
    msg: Message,
    output: Vec<u8>,
    result: Vec<u8>,
    limits: StoreLimits,
    fatal: Option<ExecutionError>,
    /// The instance's exported memory, once instantiated.
    memory: Option<wasmi::Memory>,
}

type Cx<'a> = Caller<'a, Env>;

/// The host of the call a host function runs in.
///
/// SAFETY: `Env::host` is set in [`WasmVm::run`] from a `&mut Host` that
/// `run` holds, unused, for as long as the store that owns the `Env`
/// exists; host functions run only inside that store's calls, and the
/// reference returned here is used only within one host-function
/// invocation (a nested call reborrows it and returns before it is used
/// again). So it is valid, and unaliased, wherever it is used.
#[allow(unsafe_code)]
fn host_of(c: &Cx<'_>) -> &'static mut Host<'static, 'static> {
    let addr = c.data().host;
    unsafe { &mut *std::ptr::with_exposed_provenance_mut::<Host<'static, 'static>>(addr) }
}

fn trap(s: Stop) -> wasmi::Error {
    wasmi::Error::host(s)
}

fn charge(c: &mut Cx<'_>, gas: u64) -> Result<(), wasmi::Error> {
    let left = c.get_fuel()?;
    if left < gas {
        c.set_fuel(0)?;
        return Err(trap(Stop::OutOfGas));
    }
    c.set_fuel(left - gas)?;
    Ok(())
}

fn memory(c: &Cx<'_>) -> Result<wasmi::Memory, wasmi::Error> {
    if let Some(m) = c.data().memory {
        return Ok(m);
    }
    match c.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(wasmi::Error::new("contract exports no memory")),
    }
}

fn read(c: &Cx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, wasmi::Error> {
    if len < 0 || len as usize > MAX_MEMORY_BYTES {
        return Err(wasmi::Error::new("bad length"));
    }
    let mut buf = vec![0u8; len as usize];
    memory(c)?
        .read(c, ptr as u32 as usize, &mut buf)
        .map_err(|_| wasmi::Error::new("memory access out of bounds"))?;
    Ok(buf)
}

fn write(c: &mut Cx<'_>, ptr: i32, data: &[u8]) -> Result<(), wasmi::Error> {
    let m = memory(c)?;
    m.write(c, ptr as u32 as usize, data)
        .map_err(|_| wasmi::Error::new("memory access out of bounds"))
}

fn read_addr(c: &Cx<'_>, ptr: i32) -> Result<Address, wasmi::Error> {
    let b = read(c, ptr, 20)?;
    Ok(Address(b.try_into().expect("20 bytes")))
}

fn read_u128(c: &Cx<'_>, ptr: i32) -> Result<u128, wasmi::Error> {
    let b = read(c, ptr, 16)?;
    Ok(u128::from_le_bytes(b.try_into().expect("16 bytes")))
}

/// Record a state error and stop the contract; the block fails with it.
fn fatal(c: &mut Cx<'_>, e: ExecutionError) -> wasmi::Error {
    c.data_mut().fatal = Some(e);
    trap(Stop::Fatal)
}

/// The WASM virtual machine.
pub struct WasmVm {
    engine: Engine,
    linker: Linker<Env>,
    modules: Mutex<HashMap<[u8; 32], Arc<Compiled>>>,
    /// Idle instances, each as instantiation left it.
    pool: Mutex<Idle>,
}

/// Idle instances by code hash, and the memory they hold.
#[derive(Default)]
struct Idle {
    by_code: HashMap<[u8; 32], Vec<Pooled>>,
    /// Linear memory plus saved image of every idle instance, in bytes.
    bytes: usize,
}

impl Idle {
    fn take(&mut self, hash: &[u8; 32]) -> Option<Pooled> {
        let p = self.by_code.get_mut(hash)?.pop()?;
        self.bytes -= p.bytes();
        Some(p)
    }

    fn put(&mut self, hash: [u8; 32], p: Pooled) {
        let idle = self.by_code.entry(hash).or_default();
        if idle.len() < POOL_PER_CONTRACT && self.bytes + p.bytes() <= MAX_POOL_BYTES {
            self.bytes += p.bytes();
            idle.push(p);
        }
    }
}

/// Most idle instances kept per contract (nested calls to the same
/// contract need one each).
const POOL_PER_CONTRACT: usize = 4;
/// Most contracts whose compiled modules (and idle instances) are kept.
const MAX_CACHED_CONTRACTS: usize = 1024;
/// Largest initial memory of a pooled instance. A restore copies every
/// byte of the image on every call, while a fresh instance's zeroed memory
/// can come lazily from the system, so big memories are not pooled (not
/// measured: our contracts start with one page).
const MAX_POOLED_MEMORY: usize = 4 << 16;
/// Most memory idle instances may hold, all contracts together.
const MAX_POOL_BYTES: usize = 64 << 20;

/// A module ready to run.
struct Compiled {
    /// Code hash (the pool's key).
    hash: [u8; 32],
    module: Module,
    /// Export names of its mutable globals when its instances may be
    /// reused; `None` when every call needs a fresh instance.
    globals: Option<Vec<String>>,
}

/// An idle instance, restored to its state right after instantiation.
struct Pooled {
    store: Store<Env>,
    instance: Instance,
    saved: Saved,
}

impl Pooled {
    /// Memory held: the live linear memory and its saved image.
    fn bytes(&self) -> usize {
        2 * self.saved.memory.len()
    }
}

/// An instance's mutable state right after instantiation.
struct Saved {
    memory: Arc<[u8]>,
    /// Which [`COPY_CHUNK`]-byte pieces of `memory` are all zeros.
    zero: Vec<bool>,
    globals: Vec<(Global, Val)>,
}

impl Saved {
    /// Put memory and globals back. False (and the instance must not be
    /// reused) when the memory is gone or has grown.
    fn restore(&self, store: &mut Store<Env>) -> bool {
        let Some(m) = store.data().memory else {
            return false;
        };
        let data = m.data_mut(&mut *store);
        if data.len() != self.memory.len() {
            return false;
        }
        restore_in_pieces(data, &self.memory, &self.zero);
        self.globals
            .iter()
            .all(|(g, v)| g.set(&mut *store, v.clone()).is_ok())
    }
}

/// Bytes per piece in [`restore_in_pieces`].
const COPY_CHUNK: usize = 2048;

/// Which [`COPY_CHUNK`]-byte pieces of `image` are all zeros.
fn zero_pieces(image: &[u8]) -> Vec<bool> {
    image
        .chunks(COPY_CHUNK)
        .map(|c| c.iter().all(|b| *b == 0))
        .collect()
}

/// Make `dst` equal to `image`, piece by piece of [`COPY_CHUNK`] bytes:
/// a piece `zero` marks (see [`zero_pieces`]) is cleared, which reads
/// nothing, and any other is copied.
///
/// A contract's memory image is mostly zeros (its stack and free heap), so
/// most pieces are cleared: on the 64 KiB `wasm-token` memory a C loop
/// cleared in 1.8-2.9 us what it copied in 4.9-7.8 us (on a busy machine).
/// Pieces also keep the copies off glibc's `rep movsb` path, which on AMD
/// Zen 3 ran about 18 times slower (25 us instead of 1.4 us for 64 KiB)
/// whenever the destination sat 1-63 bytes past the source modulo 4 KiB,
/// an accident of where the allocator put the two buffers (decisions.md,
/// "WASM memory is restored in pieces").
fn restore_in_pieces(dst: &mut [u8], image: &[u8], zero: &[bool]) {
    debug_assert_eq!(dst.len(), image.len());
    let pieces = dst.chunks_mut(COPY_CHUNK).zip(image.chunks(COPY_CHUNK));
    for ((d, s), zero) in pieces.zip(zero) {
        if *zero {
            d.fill(0);
        } else {
            d.copy_from_slice(s);
        }
    }
}

impl WasmVm {
    /// A VM with the deterministic configuration.
    pub fn new() -> Arc<Self> {
        let mut config = Config::default();
        // Eager translation: wasmi charges fuel for translating a function
        // lazily at its first call, which would make gas depend on what this
        // node happened to have compiled before (a restart, a cache
        // eviction), and validators would disagree on receipts.
        config
            .compilation_mode(wasmi::CompilationMode::Eager)
            .consume_fuel(true)
            .floats(false)
            .allow_start_fn(false)
            .wasm_multi_memory(false)
            .wasm_tail_call(false)
            .set_max_recursion_depth(1024);
        let engine = Engine::new(&config);
        Arc::new(WasmVm {
            linker: linker(&engine),
            engine,
            modules: Mutex::new(HashMap::new()),
            pool: Mutex::new(Idle::default()),
        })
    }

    /// Compile and check a module: what deployment accepts.
    pub fn validate(&self, code: &[u8]) -> Result<Module, VmFailure> {
        let module =
            Module::new(&self.engine, code).map_err(|e| VmFailure::InvalidCode(e.to_string()))?;
        let has = |name: &str| module.exports().any(|e| e.name() == name);
        if !has("call") {
            return Err(VmFailure::InvalidCode("no `call` export".into()));
        }
        if !has("memory") {
            return Err(VmFailure::InvalidCode("no exported memory".into()));
        }
        for import in module.imports() {
            if import.module() != "env" || !HOST_FUNCTIONS.contains(&import.name()) {
                return Err(VmFailure::InvalidCode(format!(
                    "imports {}::{}, which the chain does not provide",
                    import.module(),
                    import.name()
                )));
            }
        }
        Ok(module)
    }

    /// Prepare validated `code` (compiled as `original`) to run, pooled
    /// when it qualifies, and cache it.
    fn prepare(
        &self,
        hash: H256,
        code: &[u8],
        original: Module,
    ) -> Result<Arc<Compiled>, VmFailure> {
        let (module, globals) = match pool::plan(code) {
            None => (original, None),
            Some(p) if p.globals.is_empty() => (original, Some(p.globals)),
            Some(p) => (
                Module::new(&self.engine, &p.code[..])
                    .map_err(|e| VmFailure::InvalidCode(e.to_string()))?,
                Some(p.globals),
            ),
        };
        let compiled = Arc::new(Compiled {
            hash: hash.0,
            module,
            globals,
        });
        let mut cache = self.modules.lock();
        if cache.len() >= MAX_CACHED_CONTRACTS {
            cache.clear();
            *self.pool.lock() = Idle::default();
        }
        cache.insert(hash.0, compiled.clone());
        Ok(compiled)
    }

    fn module(
        &self,
        host: &Host<'_, '_>,
        hash: &H256,
    ) -> Result<Result<Arc<Compiled>, VmFailure>, ExecutionError> {
        if let Some(m) = self.modules.lock().get(&hash.0) {
            return Ok(Ok(m.clone()));
        }
        let Some(code) = host.code_blob(hash)? else {
            return Ok(Err(VmFailure::InvalidCode("code missing".into())));
        };
        Ok(self
            .validate(&code)
            .and_then(|m| self.prepare(*hash, &code, m)))
    }

    /// A fresh store and instance of `c`, with its saved state when its
    /// instances may be reused.
    fn instantiate(
        &self,
        c: &Compiled,
        env: Env,
    ) -> (Store<Env>, Result<Instance, VmFailure>, Option<Saved>) {
        let mut store = Store::new(&self.engine, env);
        store.limiter(|e| &mut e.limits);
        let inst = match self.linker.instantiate_and_start(&mut store, &c.module) {
            Ok(i) => i,
            Err(e) => return (store, Err(VmFailure::InvalidCode(e.to_string())), None),
        };
        let memory = inst.get_memory(&store, "memory");
        store.data_mut().memory = memory;
        let saved = match (&c.globals, memory) {
            (Some(names), Some(m)) if m.data(&store).len() <= MAX_POOLED_MEMORY => names
                .iter()
                .map(|n| inst.get_global(&store, n).map(|g| (g, g.get(&store))))
                .collect::<Option<Vec<_>>>()
                .map(|globals| {
                    let memory: Arc<[u8]> = m.data(&store).into();
                    Saved {
                        zero: zero_pieces(&memory),
                        memory,
                        globals,
                    }
                }),
            _ => None,
        };
        (store, Ok(inst), saved)
    }

    /// Run `entry` of `module` for `msg`. Value moves first.
    fn run(
        &self,
        host: &mut Host<'_, '_>,
        msg: &Message,
        c: &Compiled,
        entry: &str,
        pre_gas: u64,
    ) -> Result<CallResult, ExecutionError> {
        if pre_gas > msg.gas_limit {
            return Ok(CallResult::failed(VmFailure::OutOfGas, msg.gas_limit));
        }
        if !host.transfer(&msg.caller, &msg.to, msg.value)? {
            return Ok(CallResult::failed(VmFailure::InsufficientBalance, pre_gas));
        }
        let limits = StoreLimitsBuilder::new()
            .memory_size(MAX_MEMORY_BYTES)
            .instances(1)
            .tables(1)
            .memories(1)
            .build();
        let env = Env {
            host: (host as *mut Host<'_, '_>).expose_provenance(),
            msg: msg.clone(),
            output: Vec::new(),
            result: Vec::new(),
            limits,
            fatal: None,
            memory: None,
        };
        let idle = match c.globals {
            Some(_) => self.pool.lock().take(&c.hash),
            None => None,
        };
        let (mut store, inst, saved) = match idle {
            Some(p) => {
                let mut store = p.store;
                let memory = store.data().memory;
                *store.data_mut() = Env { memory, ..env };
                (store, Ok(p.instance), Some(p.saved))
            }
            None => self.instantiate(c, env),
        };
        // Invariant: fuel metering is enabled in the engine's config.
        store
            .set_fuel(msg.gas_limit - pre_gas)
            .expect("fuel metering is on");
        let outcome = inst.clone().and_then(|inst| {
            inst.get_typed_func::<(), ()>(&store, entry)
                .map_err(|_| VmFailure::InvalidCode(format!("no `{entry}` export")))
                .map(|f| f.call(&mut store, ()))
        });
        let gas_used = msg.gas_limit - store.get_fuel().unwrap_or(0);
        let env = store.data_mut();
        env.host = 0;
        let (output, fatal) = (std::mem::take(&mut env.output), env.fatal.take());
        if let Some(e) = fatal {
            return Err(e);
        }
        // A call that ended normally leaves an instance worth keeping:
        // restored, it is indistinguishable from a fresh one.
        if let (Ok(instance), Some(saved), Ok(Ok(()))) = (inst, saved, &outcome) {
            if saved.restore(&mut store) {
                self.pool.lock().put(
                    c.hash,
                    Pooled {
                        store,
                        instance,
                        saved,
                    },
                );
            }
        }
        let status = match outcome {
            Err(f) => Err(f),
            Ok(Ok(())) => Ok(output),
            Ok(Err(e)) => Err(match e.downcast_ref::<Stop>() {
                Some(Stop::Revert(data)) => VmFailure::Revert(data.clone()),
                Some(Stop::OutOfGas) => VmFailure::OutOfGas,
                Some(Stop::Fatal) => VmFailure::Trap("state error".into()),
                None if e.as_trap_code() == Some(wasmi::TrapCode::OutOfFuel) => VmFailure::OutOfGas,
                None => VmFailure::Trap(e.to_string()),
            }),
        };
        // Running out of gas uses all of it, whatever fuel wasmi left
        // unspent because the next instruction cost more.
        let gas_used = match status {
            Err(VmFailure::OutOfGas) => msg.gas_limit,
            _ => gas_used,
        };
        Ok(CallResult { status, gas_used })
    }
}

/// The host functions contracts may import from `env`.
pub const HOST_FUNCTIONS: &[&str] = &[
    "input_len",
    "input_read",
    "result_read",
    "ret",
    "revert",
    "caller",
    "origin",
    "this",
    "value",
    "height",
    "timestamp_ms",
    "chain_id",
    "storage_get",
    "storage_set",
    "storage_remove",
    "emit",
    "hash",
    "keccak256",
    "verify",
    "balance",
    "transfer",
    "call",
];

fn linker(engine: &Engine) -> Linker<Env> {
    let mut l: Linker<Env> = Linker::new(engine);
    let e = "env";
    // Invariant: each name is defined once, so func_wrap cannot fail.
    let ok = "host function names are unique";
    l.func_wrap(
        e,
        "input_len",
        |mut c: Cx<'_>| -> Result<i32, wasmi::Error> {
            charge(&mut c, cost::BASE)?;
            Ok(c.data().msg.input.len() as i32)
        },
    )
    .expect(ok);
    l.func_wrap(e, "input_read", |mut c: Cx<'_>, ptr: i32| {
        let input = c.data().msg.input.clone();
        charge(&mut c, cost::BASE + cost::PER_BYTE * input.len() as u64)?;
        write(&mut c, ptr, &input)
    })
    .expect(ok);
    l.func_wrap(e, "result_read", |mut c: Cx<'_>, ptr: i32| {
        let r = std::mem::take(&mut c.data_mut().result);
        charge(&mut c, cost::BASE + cost::PER_BYTE * r.len() as u64)?;
        write(&mut c, ptr, &r)
    })
    .expect(ok);
    l.func_wrap(e, "ret", |mut c: Cx<'_>, ptr: i32, len: i32| {
        let data = read(&c, ptr, len)?;
        charge(&mut c, cost::BASE + cost::PER_BYTE * data.len() as u64)?;
        c.data_mut().output = data;
        Ok(())
    })
    .expect(ok);
    l.func_wrap(
        e,
        "revert",
        |c: Cx<'_>, ptr: i32, len: i32| -> Result<(), wasmi::Error> {
            let data = read(&c, ptr, len.min(4096))?;
            Err(trap(Stop::Revert(data)))
        },
    )
    .expect(ok);
    fn put_addr(c: &mut Cx<'_>, ptr: i32, a: Address) -> Result<(), wasmi::Error> {
        charge(c, cost::BASE)?;
        write(c, ptr, &a.0)
    }
    l.func_wrap(e, "caller", |mut c: Cx<'_>, ptr: i32| {
        let a = c.data().msg.caller;
        put_addr(&mut c, ptr, a)
    })
    .expect(ok);
    l.func_wrap(e, "origin", |mut c: Cx<'_>, ptr: i32| {
        let a = c.data().msg.origin;
        put_addr(&mut c, ptr, a)
    })
    .expect(ok);
    l.func_wrap(e, "this", |mut c: Cx<'_>, ptr: i32| {
        let a = c.data().msg.to;
        put_addr(&mut c, ptr, a)
    })
    .expect(ok);
    l.func_wrap(e, "value", |mut c: Cx<'_>, ptr: i32| {
        let v = c.data().msg.value;
        charge(&mut c, cost::BASE)?;
        write(&mut c, ptr, &v.to_le_bytes())
    })
    .expect(ok);
    l.func_wrap(e, "height", |mut c: Cx<'_>| -> Result<i64, wasmi::Error> {
        charge(&mut c, cost::BASE)?;
        Ok(host_of(&c).block.height as i64)
    })
    .expect(ok);
    l.func_wrap(
        e,
        "timestamp_ms",
        |mut c: Cx<'_>| -> Result<i64, wasmi::Error> {
            charge(&mut c, cost::BASE)?;
            Ok(host_of(&c).block.timestamp_ms as i64)
        },
    )
    .expect(ok);
    l.func_wrap(
        e,
        "chain_id",
        |mut c: Cx<'_>| -> Result<i64, wasmi::Error> {
            charge(&mut c, cost::BASE)?;
            Ok(host_of(&c).chain.chain_id as i64)
        },
    )
    .expect(ok);
    l.func_wrap(
        e,
        "storage_get",
        |mut c: Cx<'_>, kp: i32, kl: i32| -> Result<i32, wasmi::Error> {
            let key = read(&c, kp, kl)?;
            charge(
                &mut c,
                cost::STORAGE_READ + cost::PER_BYTE * key.len() as u64,
            )?;
            let me = c.data().msg.to;
            match host_of(&c).storage(&me, &key) {
                Ok(Some(v)) => {
                    charge(&mut c, cost::PER_BYTE * v.len() as u64)?;
                    let n = v.len() as i32;
                    c.data_mut().result = v;
                    Ok(n)
                }
                Ok(None) => Ok(-1),
                Err(err) => Err(fatal(&mut c, err)),
            }
        },
    )
    .expect(ok);
    l.func_wrap(
        e,
        "storage_set",
        |mut c: Cx<'_>, kp: i32, kl: i32, vp: i32, vl: i32| {
            let key = read(&c, kp, kl)?;
            let val = read(&c, vp, vl)?;
            charge(
                &mut c,
                cost::STORAGE_WRITE + cost::STORAGE_WRITE_PER_BYTE * (key.len() + val.len()) as u64,
            )?;
            let me = c.data().msg.to;
            host_of(&c).set_storage(&me, &key, Some(val));
            Ok(())
        },
    )
    .expect(ok);
    l.func_wrap(e, "storage_remove", |mut c: Cx<'_>, kp: i32, kl: i32| {
        let key = read(&c, kp, kl)?;
        charge(&mut c, cost::STORAGE_WRITE)?;
        let me = c.data().msg.to;
        host_of(&c).set_storage(&me, &key, None);
        Ok(())
    })
    .expect(ok);
    l.func_wrap(
        e,
        "emit",
        |mut c: Cx<'_>, np: i32, nl: i32, dp: i32, dl: i32| {
            let name = read(&c, np, nl.min(256))?;
            let data = read(&c, dp, dl)?;
            charge(
                &mut c,
                cost::EVENT + cost::EVENT_PER_BYTE * (name.len() + data.len()) as u64,
            )?;
            let name = String::from_utf8(name)
                .map_err(|_| wasmi::Error::new("event name is not UTF-8"))?;
            let attributes = match Value::decode(&data) {
                Ok(Value::Map(kvs)) => kvs.into_iter().map(|(k, v)| (k, render(&v))).collect(),
                _ => return Err(wasmi::Error::new("event attributes are not a map")),
            };
            let emitter = c.data().msg.to;
            host_of(&c).emit(Event {
                emitter,
                name,
                attributes,
            });
            Ok(())
        },
    )
    .expect(ok);
    l.func_wrap(e, "hash", |mut c: Cx<'_>, p: i32, n: i32, out: i32| {
        let data = read(&c, p, n)?;
        charge(&mut c, cost::HASH + cost::PER_BYTE * data.len() as u64)?;
        let h = tongtian_crypto::suite(host_of(&c).chain.suite).hash(&data);
        write(&mut c, out, &h)
    })
    .expect(ok);
    l.func_wrap(e, "keccak256", |mut c: Cx<'_>, p: i32, n: i32, out: i32| {
        let data = read(&c, p, n)?;
        charge(&mut c, cost::HASH + cost::PER_BYTE * data.len() as u64)?;
        write(&mut c, out, &tongtian_crypto::eth::keccak256(&data))
    })
    .expect(ok);
    l.func_wrap(
        e,
        "verify",
        |mut c: Cx<'_>,
         kp: i32,
         kl: i32,
         mp: i32,
         ml: i32,
         sp: i32,
         sl: i32|
         -> Result<i32, wasmi::Error> {
            let (k, m, s) = (
                read(&c, kp, kl.min(128))?,
                read(&c, mp, ml)?,
                read(&c, sp, sl.min(128))?,
            );
            charge(&mut c, cost::VERIFY + cost::PER_BYTE * m.len() as u64)?;
            let suite = tongtian_crypto::suite(host_of(&c).chain.suite);
            Ok(suite.verify(&k, &m, &s).is_ok() as i32)
        },
    )
    .expect(ok);
    l.func_wrap(e, "balance", |mut c: Cx<'_>, ap: i32, out: i32| {
        let a = read_addr(&c, ap)?;
        charge(&mut c, cost::BALANCE)?;
        let b = match host_of(&c).account(&a) {
            Ok(acct) => acct.balance,
            Err(err) => return Err(fatal(&mut c, err)),
        };
        write(&mut c, out, &b.to_le_bytes())
    })
    .expect(ok);
    l.func_wrap(
        e,
        "transfer",
        |mut c: Cx<'_>, tp: i32, ap: i32| -> Result<i32, wasmi::Error> {
            let to = read_addr(&c, tp)?;
            let amount = read_u128(&c, ap)?;
            charge(&mut c, cost::TRANSFER)?;
            let me = c.data().msg.to;
            match host_of(&c).transfer(&me, &to, amount) {
                Ok(true) => Ok(0),
                Ok(false) => Ok(1),
                Err(err) => Err(fatal(&mut c, err)),
            }
        },
    )
    .expect(ok);
    l.func_wrap(
        e,
        "call",
        |mut c: Cx<'_>, tp: i32, ip: i32, il: i32, vp: i32| -> Result<i32, wasmi::Error> {
            let to = read_addr(&c, tp)?;
            let input = read(&c, ip, il)?;
            let value = read_u128(&c, vp)?;
            charge(&mut c, cost::CALL + cost::PER_BYTE * input.len() as u64)?;
            let left = c.get_fuel()?;
            let sub = {
                let msg = &c.data().msg;
                Message {
                    caller: msg.to,
                    origin: msg.origin,
                    to,
                    value,
                    input,
                    gas_limit: left,
                    gas_price: msg.gas_price,
                    depth: msg.depth + 1,
                    access_list: Vec::new(),
                }
            };
            let r = match host_of(&c).call(&sub) {
                Ok(r) => r,
                Err(err) => return Err(fatal(&mut c, err)),
            };
            c.set_fuel(left - r.gas_used.min(left))?;
            let (status, data) = match r.status {
                Ok(out) => (0, out),
                Err(VmFailure::Revert(data)) => (1, data),
                Err(f) => (1, f.message().into_bytes()),
            };
            let n = data.len() as i32;
            c.data_mut().result = data;
            Ok((n << 1) | status)
        },
    )
    .expect(ok);
    l
}

/// An event attribute's text: strings as themselves, other values as JSON.
fn render(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Bytes(b) => const_hex::encode_prefixed(b),
        other => format!("{other:?}"),
    }
}

impl Vm for WasmVm {
    fn kind(&self) -> VmKind {
        VmKind::Wasm
    }

    fn create(
        &self,
        host: &mut Host<'_, '_>,
        msg: &Message,
        code: &[u8],
    ) -> Result<CallResult, ExecutionError> {
        let deposit = CODE_DEPOSIT_PER_BYTE * code.len() as u64;
        let module = match self.validate(code) {
            Ok(m) => m,
            Err(f) => return Ok(CallResult::failed(f, deposit.min(msg.gas_limit))),
        };
        let has_deploy = module.exports().any(|e| e.name() == "deploy");
        let info = host.set_code(&msg.to, VmKind::Wasm, code);
        let compiled = match self.prepare(info.hash, code, module) {
            Ok(c) => c,
            Err(f) => return Ok(CallResult::failed(f, deposit.min(msg.gas_limit))),
        };
        if has_deploy {
            self.run(host, msg, &compiled, "deploy", deposit)
        } else {
            // No constructor: just the value and the deposit.
            if deposit > msg.gas_limit {
                return Ok(CallResult::failed(VmFailure::OutOfGas, msg.gas_limit));
            }
            if !host.transfer(&msg.caller, &msg.to, msg.value)? {
                return Ok(CallResult::failed(VmFailure::InsufficientBalance, deposit));
            }
            Ok(CallResult {
                status: Ok(Vec::new()),
                gas_used: deposit,
            })
        }
    }

    fn call(
        &self,
        host: &mut Host<'_, '_>,
        msg: &Message,
        code: &CodeInfo,
    ) -> Result<CallResult, ExecutionError> {
        let module = match self.module(host, &code.hash)? {
            Ok(m) => m,
            Err(f) => return Ok(CallResult::failed(f, 0)),
        };
        self.run(host, msg, &module, "call", 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_in_pieces_rebuilds_every_byte_at_any_length_and_offset() {
        // An image with zero pieces, non-zero pieces, and a piece that is
        // zero but for its last byte.
        let mut image: Vec<u8> = (0..4 * COPY_CHUNK + 77)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        image[COPY_CHUNK..3 * COPY_CHUNK].fill(0);
        image[3 * COPY_CHUNK - 1] = 9;
        for len in [
            0,
            1,
            COPY_CHUNK - 1,
            COPY_CHUNK,
            2 * COPY_CHUNK + 1,
            image.len() - 16,
        ] {
            let image = &image[..len];
            let zero = zero_pieces(image);
            // The destination dirty, 16 bytes past its buffer's start (the
            // placement that made one large copy slow).
            let mut buf = vec![0xaau8; len + 16];
            restore_in_pieces(&mut buf[16..], image, &zero);
            assert_eq!(&buf[16..], image, "length {len}");
            assert!(
                buf[..16].iter().all(|b| *b == 0xaa),
                "wrote before the destination"
            );
        }
        assert_eq!(zero_pieces(&image), vec![false, true, false, false, false]);
    }

    #[test]
    fn event_attributes_render_as_text() {
        assert_eq!(render(&Value::Bytes(vec![0xab, 0x01, 0xff])), "0xab01ff");
        assert_eq!(render(&Value::Bytes(vec![])), "0x");
        assert_eq!(render(&Value::Int(340)), "340");
        assert_eq!(render(&Value::Str("lot 7".into())), "lot 7");
        assert_eq!(render(&Value::Bool(true)), "true");
    }
}
