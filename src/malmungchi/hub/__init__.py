"""Publishing to the Hugging Face Hub: cards for builds and runs (`card`), and `malmungchi hub push` (`push`)."""
