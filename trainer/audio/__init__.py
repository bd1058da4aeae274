"""Audio: wav files, the log-mel features of the HiFi-GAN convention and their inversion by Griffin-Lim."""
