"""Serial links and binary protocols (construct), and the device side of an slcan CAN adapter."""
