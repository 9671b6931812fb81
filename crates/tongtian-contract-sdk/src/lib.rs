//! Write Tongtian WASM contracts as ordinary `no_std` Rust crates.
//!
//! A contract is a `cdylib` built for `wasm32-unknown-unknown` that exports
//! `call` (and optionally `deploy`, run once at creation). Both read their
//! input with `input`, and answer with `ret` or `revert` (these and the
//! other host calls exist when building for `wasm32`):
//!
//! ```ignore
//! #![no_std]
//! use tongtian_contract_sdk::{self as sdk, Value};
//!
//! #[no_mangle]
//! pub extern "C" fn call() {
//!     let input = sdk::input();
//!     match input.method.as_str() {
//!         "get" => sdk::ret(&sdk::get(b"n").map_or(Value::Int(0), |b| sdk::decode(&b))),
//!         _ => sdk::revert("unknown method"),
//!     }
//! }
//! ```
//!
//! The [`abi`] module (values, inputs) is plain `no_std` code that hosts use
//! too; the host functions exist only on `wasm32`. On `wasm32` the crate
//! also provides the global allocator (a bump allocator: each call runs in
//! a fresh instance, so nothing needs freeing) and a panic handler that
//! reverts with the message `panic`.
#![no_std]
// Calling the host is foreign-function calls, and the allocator hands out
// raw memory: both need `unsafe`, kept to the `env` module below.
#![allow(unsafe_code)]

extern crate alloc;

pub mod abi;

pub use abi::{ArgReader, Input, Value};
pub use alloc::{format, string::String, string::ToString, vec, vec::Vec};

/// A 20-byte account or contract address.
pub type Address = [u8; 20];

/// Lower-case `0x` hex of bytes (for event attributes).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decimal text of an integer. Cheaper than `format!` in WASM, where 128-bit
/// division is a software routine: this divides once by 10^19 and formats
/// the two 64-bit halves.
pub fn dec(n: u128) -> String {
    fn push_u64(s: &mut String, mut v: u64, min_digits: usize) {
        let mut buf = [b'0'; 20];
        let mut i = 20;
        while v > 0 {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        let start = i.min(20 - min_digits);
        s.extend(buf[start..].iter().map(|b| *b as char));
    }
    const E19: u128 = 10_000_000_000_000_000_000;
    let mut s = String::new();
    if n >= E19 {
        let (hi, lo) = ((n / E19), (n % E19) as u64);
        if hi >= E19 {
            push_u64(&mut s, (hi / E19) as u64, 1);
            push_u64(&mut s, (hi % E19) as u64, 19);
        } else {
            push_u64(&mut s, hi as u64, 1);
        }
        push_u64(&mut s, lo, 19);
    } else {
        push_u64(&mut s, n as u64, 1);
    }
    s
}

/// Decode a stored value, reverting if it is corrupt.
#[cfg(target_arch = "wasm32")]
pub fn decode(bytes: &[u8]) -> Value {
    Value::decode(bytes).unwrap_or_else(|_| revert("corrupt stored value"))
}

#[cfg(target_arch = "wasm32")]
mod env {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn input_len() -> i32;
        pub fn input_read(ptr: *mut u8);
        pub fn result_read(ptr: *mut u8);
        pub fn ret(ptr: *const u8, len: i32);
        pub fn revert(ptr: *const u8, len: i32) -> !;
        pub fn caller(out: *mut u8);
        pub fn origin(out: *mut u8);
        pub fn this(out: *mut u8);
        pub fn value(out: *mut u8);
        pub fn height() -> i64;
        pub fn timestamp_ms() -> i64;
        pub fn chain_id() -> i64;
        pub fn storage_get(key: *const u8, key_len: i32) -> i32;
        pub fn storage_set(key: *const u8, key_len: i32, val: *const u8, val_len: i32);
        pub fn storage_remove(key: *const u8, key_len: i32);
        pub fn emit(name: *const u8, name_len: i32, data: *const u8, data_len: i32);
        pub fn hash(data: *const u8, len: i32, out: *mut u8);
        pub fn keccak256(data: *const u8, len: i32, out: *mut u8);
        pub fn verify(
            pk: *const u8,
            pk_len: i32,
            msg: *const u8,
            msg_len: i32,
            sig: *const u8,
            sig_len: i32,
        ) -> i32;
        pub fn balance(addr: *const u8, out: *mut u8);
        pub fn transfer(to: *const u8, amount: *const u8) -> i32;
        pub fn call(to: *const u8, input: *const u8, input_len: i32, value: *const u8) -> i32;
    }

    /// Bump allocator over the instance's linear memory.
    pub struct Bump;

    static mut NEXT: usize = 0;
    static mut END: usize = 0;

    extern "C" {
        /// First byte after static data and the stack (set by the linker).
        static __heap_base: u8;
    }

    unsafe impl core::alloc::GlobalAlloc for Bump {
        unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
            if END == 0 {
                // First use: the heap starts after static data and the
                // stack, in the memory the module already has.
                NEXT = core::ptr::addr_of!(__heap_base) as usize;
                END = core::arch::wasm32::memory_size(0) * 65536;
            }
            let align = layout.align();
            let start = (NEXT + align - 1) & !(align - 1);
            let end = match start.checked_add(layout.size()) {
                Some(e) => e,
                None => return core::ptr::null_mut(),
            };
            if end > END {
                let pages = (end - END).div_ceil(65536);
                if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
                    return core::ptr::null_mut();
                }
                END += pages * 65536;
            }
            NEXT = end;
            start as *mut u8
        }

        unsafe fn dealloc(&self, _ptr: *mut u8, _layout: core::alloc::Layout) {}
    }

    #[global_allocator]
    static ALLOC: Bump = Bump;

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        unsafe { revert(b"panic".as_ptr(), 5) }
    }
}

#[cfg(target_arch = "wasm32")]
mod api {
    use super::*;

    fn result(len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        unsafe { env::result_read(buf.as_mut_ptr()) };
        buf
    }

    fn addr(f: unsafe extern "C" fn(*mut u8)) -> Address {
        let mut a = [0u8; 20];
        unsafe { f(a.as_mut_ptr()) };
        a
    }

    /// The call's raw input bytes.
    pub fn raw_input() -> Vec<u8> {
        let n = unsafe { env::input_len() } as usize;
        let mut buf = vec![0u8; n];
        unsafe { env::input_read(buf.as_mut_ptr()) };
        buf
    }

    /// The call's method and arguments; reverts if they do not decode.
    pub fn input() -> Input {
        Input::decode(&raw_input()).unwrap_or_else(|_| revert("malformed input"))
    }

    /// Return `v` to the caller (the call goes on until the entry point
    /// returns; the last value set wins).
    pub fn ret(v: &Value) {
        let b = v.encode();
        unsafe { env::ret(b.as_ptr(), b.len() as i32) }
    }

    /// Abort the call, rolling back all its effects, with a reason.
    pub fn revert(reason: &str) -> ! {
        unsafe { env::revert(reason.as_ptr(), reason.len() as i32) }
    }

    /// Immediate caller: an account, or a contract calling this one.
    pub fn caller() -> Address {
        addr(env::caller)
    }

    /// The account that signed the transaction.
    pub fn origin() -> Address {
        addr(env::origin)
    }

    /// This contract's address.
    pub fn this() -> Address {
        addr(env::this)
    }

    /// Native tokens sent with the call (already credited to this contract).
    pub fn value() -> u128 {
        let mut b = [0u8; 16];
        unsafe { env::value(b.as_mut_ptr()) };
        u128::from_le_bytes(b)
    }

    /// Block height.
    pub fn height() -> u64 {
        unsafe { env::height() as u64 }
    }

    /// Block time, milliseconds since the Unix epoch.
    pub fn timestamp_ms() -> u64 {
        unsafe { env::timestamp_ms() as u64 }
    }

    /// Chain id.
    pub fn chain_id() -> u64 {
        unsafe { env::chain_id() as u64 }
    }

    /// Read this contract's storage.
    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        let n = unsafe { env::storage_get(key.as_ptr(), key.len() as i32) };
        (n >= 0).then(|| result(n as usize))
    }

    /// Read this contract's storage into `buf` (no allocation): the
    /// value's length, or `None` if absent. Reverts if it does not fit.
    pub fn get_into(key: &[u8], buf: &mut [u8]) -> Option<usize> {
        let n = unsafe { env::storage_get(key.as_ptr(), key.len() as i32) };
        if n < 0 {
            return None;
        }
        let n = n as usize;
        if n > buf.len() {
            revert("stored value larger than the buffer");
        }
        unsafe { env::result_read(buf.as_mut_ptr()) };
        Some(n)
    }

    /// Write this contract's storage.
    pub fn set(key: &[u8], value: &[u8]) {
        unsafe {
            env::storage_set(
                key.as_ptr(),
                key.len() as i32,
                value.as_ptr(),
                value.len() as i32,
            )
        }
    }

    /// Delete from this contract's storage.
    pub fn remove(key: &[u8]) {
        unsafe { env::storage_remove(key.as_ptr(), key.len() as i32) }
    }

    /// Read a stored [`Value`].
    pub fn get_value(key: &[u8]) -> Option<Value> {
        get(key).map(|b| decode(&b))
    }

    /// Store a [`Value`].
    pub fn set_value(key: &[u8], v: &Value) {
        set(key, &v.encode())
    }

    /// Emit an event with string attributes (they land in the receipt).
    pub fn emit(name: &str, attributes: &[(&str, String)]) {
        let map = Value::Map(
            attributes
                .iter()
                .map(|(k, v)| (String::from(*k), Value::Str(v.clone())))
                .collect(),
        );
        let data = map.encode();
        unsafe {
            env::emit(
                name.as_ptr(),
                name.len() as i32,
                data.as_ptr(),
                data.len() as i32,
            )
        }
    }

    /// Emit an event with typed attributes; the host renders them as text
    /// (bytes as `0x` hex, integers in decimal), which is cheaper than
    /// formatting inside the contract.
    pub fn emit_values(name: &str, attributes: &[(&str, Value)]) {
        let mut data = Vec::with_capacity(128);
        data.push(5);
        data.extend_from_slice(&(attributes.len() as u32).to_le_bytes());
        for (k, v) in attributes {
            data.extend_from_slice(&(k.len() as u32).to_le_bytes());
            data.extend_from_slice(k.as_bytes());
            v.encode_into(&mut data);
        }
        unsafe {
            env::emit(
                name.as_ptr(),
                name.len() as i32,
                data.as_ptr(),
                data.len() as i32,
            )
        }
    }

    /// Hash with the chain's suite (SHA-256 or SM3).
    pub fn hash(data: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        unsafe { env::hash(data.as_ptr(), data.len() as i32, out.as_mut_ptr()) };
        out
    }

    /// Keccak-256.
    pub fn keccak256(data: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        unsafe { env::keccak256(data.as_ptr(), data.len() as i32, out.as_mut_ptr()) };
        out
    }

    /// Check a signature with the chain's suite (Ed25519 or SM2).
    pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        unsafe {
            env::verify(
                public_key.as_ptr(),
                public_key.len() as i32,
                message.as_ptr(),
                message.len() as i32,
                signature.as_ptr(),
                signature.len() as i32,
            ) == 1
        }
    }

    /// The address of a public key of the chain's suite.
    pub fn address_of(public_key: &[u8]) -> Address {
        let h = hash(public_key);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h[12..]);
        a
    }

    /// Native balance of an account or contract.
    pub fn balance(a: &Address) -> u128 {
        let mut b = [0u8; 16];
        unsafe { env::balance(a.as_ptr(), b.as_mut_ptr()) };
        u128::from_le_bytes(b)
    }

    /// Pay native tokens from this contract; `false` if it has too few.
    pub fn transfer(to: &Address, amount: u128) -> bool {
        let a = amount.to_le_bytes();
        unsafe { env::transfer(to.as_ptr(), a.as_ptr()) == 0 }
    }

    /// Call another contract with raw input (a WASM contract's encoded
    /// [`Input`], or EVM call data): its output, or its revert data.
    pub fn call_raw(to: &Address, input: &[u8], value: u128) -> Result<Vec<u8>, Vec<u8>> {
        let v = value.to_le_bytes();
        let status =
            unsafe { env::call(to.as_ptr(), input.as_ptr(), input.len() as i32, v.as_ptr()) };
        let n = status >> 1;
        let data = result(n as usize);
        if status & 1 == 0 {
            Ok(data)
        } else {
            Err(data)
        }
    }

    /// Call a WASM contract's method: its returned value, or its revert
    /// reason.
    pub fn call(to: &Address, method: &str, args: &[Value], value: u128) -> Result<Value, String> {
        match call_raw(to, &Input::encode(method, args), value) {
            Ok(out) if out.is_empty() => Ok(Value::List(Vec::new())),
            Ok(out) => Value::decode(&out).map_err(|_| String::from("undecodable output")),
            Err(e) => Err(String::from_utf8_lossy(&e).into_owned()),
        }
    }

    /// Argument `i` as text, reverting with a clear message otherwise.
    pub fn arg_str(input: &Input, i: usize) -> String {
        match input.args.get(i).and_then(Value::as_str) {
            Some(s) => String::from(s),
            None => revert(&format!("argument {i} must be a string")),
        }
    }

    /// Argument `i` as an integer.
    pub fn arg_u128(input: &Input, i: usize) -> u128 {
        input
            .args
            .get(i)
            .and_then(Value::as_u128)
            .unwrap_or_else(|| revert(&format!("argument {i} must be an integer")))
    }

    /// Argument `i` as bytes (`0x` hex in JSON).
    pub fn arg_bytes(input: &Input, i: usize) -> Vec<u8> {
        match input.args.get(i).and_then(Value::as_bytes) {
            Some(b) => b.to_vec(),
            None => revert(&format!("argument {i} must be 0x-hex bytes")),
        }
    }

    /// Argument `i` as an address (`0x` + 40 hex digits in JSON).
    pub fn arg_address(input: &Input, i: usize) -> Address {
        input
            .args
            .get(i)
            .and_then(Value::as_address)
            .unwrap_or_else(|| revert(&format!("argument {i} must be a 20-byte address")))
    }
}

#[cfg(target_arch = "wasm32")]
pub use api::*;
