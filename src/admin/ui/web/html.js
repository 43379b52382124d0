// htm binds tagged templates to Preact's h(): components are written as standard JavaScript (no JSX build
// step) and text and attribute values always go through the virtual DOM, never parsed as markup.
import htm from 'htm';
import { h } from 'preact';

export const html = htm.bind(h);
