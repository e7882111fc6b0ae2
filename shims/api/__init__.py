"""The shim's own API: what palletd (or any other caller) may use to drive a pallet-shim.

Owns: the values a shim takes and gives (`spec`), their JSON files in the bundle
(`files`), the framed protocol on its socket (`wire`), where its sockets live
(`sockpath`), and the container log's format and readers (`logframes`, `logs`; the
writer is the shim's own). Must not: import anything of the daemon, or anything of
`pallet.shim` outside this package; everything else in `pallet.shim` is the shim's
private business.
"""
