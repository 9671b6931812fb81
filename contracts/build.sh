#!/usr/bin/env bash
# Rebuild every example contract's artifact from source.
#   Solidity (token, deed, xcall, evm-port, and the test fixture fixtures/Nested): solc
#     0.8.28 from npm (solcjs), optimizer on, default EVM version ->
#     <Name>.bin (hex init code) and <Name>.abi.
#   Rust (notary, trace, receivable, wasm-token): cargo for
#     wasm32-unknown-unknown, release -> <name>.wasm beside the sources.
# Built artifacts are committed, so tests never need npm or this script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
SOLC_VERSION=0.8.28

solidity() {
  local tool="$here/.solc"
  if [ ! -x "$tool/node_modules/.bin/solcjs" ]; then
    mkdir -p "$tool"
    npm install --silent --prefix "$tool" "solc@$SOLC_VERSION" >/dev/null
  fi
  for src in "$here"/token/Token.sol "$here"/deed/Deed.sol "$here"/fixtures/Nested.sol "$here"/xcall/CrossCall.sol "$here"/evm-port/TongtianPort.sol; do
    local dir name out
    dir="$(dirname "$src")"; name="$(basename "$src" .sol)"
    out="$(mktemp -d)"
    (cd "$dir" && "$tool/node_modules/.bin/solcjs" --bin --abi --optimize \
      -o "$out" "$name.sol")
    cp "$out/${name}_sol_${name}.bin" "$dir/$name.bin"
    cp "$out/${name}_sol_${name}.abi" "$dir/$name.abi"
    rm -rf "$out"
    echo "built $dir/$name.bin"
  done
}

wasm() {
  (cd "$here" && cargo build --release --target wasm32-unknown-unknown --quiet)
  for c in notary trace receivable wasm_token; do
    local dir="${c//_/-}"
    cp "$here/target/wasm32-unknown-unknown/release/$c.wasm" "$here/$dir/$c.wasm"
    echo "built $here/$dir/$c.wasm"
  done
}

case "${1:-all}" in
  solidity) solidity ;;
  wasm) wasm ;;
  all) solidity; wasm ;;
  *) echo "usage: $0 [solidity|wasm|all]" >&2; exit 2 ;;
esac
