"""Hardware generators: shared blocks in ``common``, then one subpackage per architecture."""
