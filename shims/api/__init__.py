"""The shim's own API: what palletd (or any other caller) may use to drive a pallet-shim.

Owns: the values a shim takes and gives (`spec`), their JSON files in the bundle
(`files`), the framed protocol on its socket (`wire`) and where its sockets live
(`sockpath`). Must not: import anything of the daemon; everything else in `pallet.shim`
is the shim's private business.
"""
