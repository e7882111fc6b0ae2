"""The shim's own API: what palletd (or any other caller) may use to drive a pallet-shim.

Owns, one module each: `spec` (the values a shim takes and gives: ShimSpec, ExecSpec,
ExitStatus, ShimState, the bundle file names), `codec` (the one dataclass <-> JSON
codec), `files` (the bundle's JSON files and the spec checks), `messages` (the requests,
replies and events on a shim's socket), `wire` (their framing), `sockpath` (where a
shim's sockets live), `logframes` and `logs` (the container log's format and readers; the
writer is the shim's own), and `delete` (what `pallet-shim delete` reports).
Must not: import anything of the daemon, or anything of `pallet.shim` outside this
package; everything else in `pallet.shim` is the shim's private business.
"""
