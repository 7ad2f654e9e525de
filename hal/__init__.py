"""Hardware abstraction: small Protocols, one backend per real library, plus simulated backends."""
