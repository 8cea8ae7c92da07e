"""Mode-collapse benchmark: 2D Gaussian mixtures, stacked digits and Stacked MNIST, every critic constraint (and
R3GAN's recipe), several seeds.

python -m pgn_tf.benchmark --suite=ring8 --methods=pgn,gn,sn,gp1,gp0,r1,r3,none --seeds=0,1,2 --out=DIR
"""
