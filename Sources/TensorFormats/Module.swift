public enum TensorFormatsModule {}
