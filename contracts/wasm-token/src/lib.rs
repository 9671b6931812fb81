//! A fungible token with the logic of an ERC-20 `transfer`, for comparing
//! the WASM VM with the EVM on the same work.
#![no_std]

use tongtian_contract_sdk::{self as sdk, Value};

fn key(owner: &sdk::Address) -> [u8; 21] {
    let mut k = [b'b'; 21];
    k[1..].copy_from_slice(owner);
    k
}

fn balance(owner: &sdk::Address) -> u128 {
    sdk::get(&key(owner)).map_or(0, |b| {
        u128::from_le_bytes(b.try_into().unwrap_or_else(|_| sdk::revert("corrupt balance")))
    })
}

fn set_balance(owner: &sdk::Address, v: u128) {
    sdk::set(&key(owner), &v.to_le_bytes());
}

/// `deploy(supply)`: the whole supply goes to the deployer.
#[no_mangle]
pub extern "C" fn deploy() {
    let input = sdk::input();
    let supply = sdk::arg_u128(&input, 0);
    set_balance(&sdk::caller(), supply);
    sdk::set(b"supply", &supply.to_le_bytes());
}

#[no_mangle]
pub extern "C" fn call() {
    let input = sdk::input();
    match input.method.as_str() {
        "transfer" => {
            let to = sdk::arg_address(&input, 0);
            let amount = sdk::arg_u128(&input, 1);
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
        "balance_of" => sdk::ret(&Value::Int(balance(&sdk::arg_address(&input, 0)))),
        "total_supply" => sdk::ret(&Value::Int(
            sdk::get(b"supply").map_or(0, |b| u128::from_le_bytes(b.try_into().unwrap_or([0; 16]))),
        )),
        _ => sdk::revert("unknown method"),
    }
}
