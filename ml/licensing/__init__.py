"""Licence and consent gate, the licence registry and the append-only licence ledger."""
