"""The paper's three task shapes beyond aligned character modelling, on the core's NumPy cells.

    many-to-one    classify.py     a sequence in, a category out        rnnlab classify / rnnlab predict
    one-to-many    conditional.py  a label in, a sequence out           rnnlab train --condition-column,
                                                                        rnnlab sample --condition
    many-to-many   seq2seq.py      a sequence in, another sequence out  rnnlab seq2seq train / predict

They share net.py (a stack of the core's cells over padded, masked batches), loop.py (one small training loop over
the core's optimisers, schedule and checkpoints), store.py (the checkpoint layout, with the task in the metadata),
data.py (CSV/TSV tables, padding, splits) and synthetic.py (small tasks that need no download). Their command line
is rnnlab/cli/tasks.py (and rnnlab/cli/conditional.py for the flags of the core's train and sample).
"""
