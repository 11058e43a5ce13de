"""The landform models (pits, craters, mounds, ice): throughput (`epnml bench landforms`)
and the training pieces their trainers share (``training``, ``augment``)."""
