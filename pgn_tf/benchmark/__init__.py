"""Mode-collapse benchmark: 2D Gaussian mixtures and stacked digits, every critic constraint, several seeds.

python -m pgn_tf.benchmark --suite=ring8 --methods=pgn,gn,sn,gp1,gp0,r1,none --seeds=0,1,2 --out=DIR
"""
