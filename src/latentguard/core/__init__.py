"""Small shared core without torch: errors, units and budgets, config loading, the argparse pieces every CLI shares.

Nothing here imports torch (so ``latentguard --help`` does not pay for it); devices, dtypes, seeding and
model-state helpers live in :mod:`latentguard.ops` (``ops.runtime``, ``ops.state``).
"""
