"""Small shared core: errors, units and budgets, config loading, the argparse pieces every CLI shares.

Importing the package imports no torch (so ``latentguard --help`` does not pay for it); the torch-based
helpers (devices, dtypes, seeding, model state) are imported from their own modules.
"""
