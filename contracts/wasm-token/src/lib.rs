//! A fungible token with the logic of an ERC-20 `transfer`, for comparing
//! the WASM VM with the EVM on the same work. It reads its arguments with
//! the SDK's zero-copy [`sdk::ArgReader`] and keeps balances as 16-byte
//! little-endian integers.
#![no_std]

use tongtian_contract_sdk::{self as sdk, ArgReader, Value};

fn key(owner: &sdk::Address) -> [u8; 21] {
    let mut k = [b'b'; 21];
    k[1..].copy_from_slice(owner);
    k
}

fn balance(owner: &sdk::Address) -> u128 {
    let mut buf = [0u8; 16];
    match sdk::get_into(&key(owner), &mut buf) {
        Some(16) => u128::from_le_bytes(buf),
        Some(_) => sdk::revert("corrupt balance"),
        None => 0,
    }
}

fn set_balance(owner: &sdk::Address, v: u128) {
    sdk::set(&key(owner), &v.to_le_bytes());
}

fn bad_args() -> ! {
    sdk::revert("bad arguments")
}

/// `deploy(supply)`: the whole supply goes to the deployer.
#[no_mangle]
pub extern "C" fn deploy() {
    let raw = sdk::raw_input();
    let Some((_, mut args)) = ArgReader::parse(&raw) else { bad_args() };
    let supply = args.u128().unwrap_or_else(|| bad_args());
    set_balance(&sdk::caller(), supply);
    sdk::set(b"supply", &supply.to_le_bytes());
}

#[no_mangle]
pub extern "C" fn call() {
    let raw = sdk::raw_input();
    let Some((method, mut args)) = ArgReader::parse(&raw) else {
        sdk::revert("malformed input")
    };
    match method {
        "transfer" => {
            let to = args.address().unwrap_or_else(|| bad_args());
            let amount = args.u128().unwrap_or_else(|| bad_args());
            let from = sdk::caller();
            let have = balance(&from);
            if have < amount {
                sdk::revert("insufficient balance");
            }
            set_balance(&from, have - amount);
            set_balance(&to, balance(&to) + amount);
            sdk::emit_values(
                "transfer",
                &[
                    ("from", Value::Bytes(from.to_vec())),
                    ("to", Value::Bytes(to.to_vec())),
                    ("amount", Value::Int(amount)),
                ],
            );
            sdk::ret(&Value::Bool(true));
        }
        "balance_of" => {
            let who = args.address().unwrap_or_else(|| bad_args());
            sdk::ret(&Value::Int(balance(&who)))
        }
        "total_supply" => {
            let mut buf = [0u8; 16];
            sdk::get_into(b"supply", &mut buf);
            sdk::ret(&Value::Int(u128::from_le_bytes(buf)))
        }
        _ => sdk::revert("unknown method"),
    }
}
