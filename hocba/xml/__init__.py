"""The record document: XML building, its database form, XMLDSig signatures."""
