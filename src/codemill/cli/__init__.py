"""Layer 6: the ``codemill`` command. Commands parse, call the layers below and print;
they hold no logic of their own."""
