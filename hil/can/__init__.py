"""The CAN layer: buses from rig tables (`bus`), DBC databases (`dbc`), the receive side (`monitor`), rest-bus
and emulated boards' cyclic transmission (`periodic`), end-to-end protection (`e2e`), logs (`log`), and the
`hil dbc` command (`cli`). Built on python-can and cantools; nothing here knows about batteries.
"""
