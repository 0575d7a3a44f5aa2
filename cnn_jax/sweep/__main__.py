from cnn_jax.sweep import runner

if __name__ == "__main__":
  runner.run()
