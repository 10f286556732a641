"""Side-by-side benchmarks of ssd_tutorial against torchvision's SSD pieces.

Run them all with ``python -m benchmarks.run`` (``make bench``); ``--quick`` runs tiny sizes in seconds.
Each line checks that both sides give the same result before it times them.
"""
