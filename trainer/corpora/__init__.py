"""Making speech corpora: sentences, eSpeak NG and flite voices, LJSpeech-layout folders."""
